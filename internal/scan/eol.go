package scan

import (
	"strings"
	"time"
)

// eolTable holds the end of security support of distribution releases, as
// the distributions publish them (Debian: end of LTS, wiki.debian.org/LTS;
// Ubuntu: end of standard support, ubuntu.com/about/release-cycle; Alpine:
// end of the release branch, alpinelinux.org/releases). They are facts;
// update the table when a release is added.
var eolTable = map[string]map[string]string{
	"debian": {
		"7": "2018-05-31", "8": "2020-06-30", "9": "2022-06-30", "10": "2024-06-30",
		"11": "2026-08-31", "12": "2028-06-30", "13": "2030-06-30",
	},
	"ubuntu": {
		"14.04": "2019-04-30", "16.04": "2021-04-30", "18.04": "2023-05-31", "20.04": "2025-05-31",
		"22.04": "2027-06-01", "24.04": "2029-05-31",
		"20.10": "2021-07-22", "21.04": "2022-01-20", "21.10": "2022-07-14", "22.10": "2023-07-20",
		"23.04": "2024-01-25", "23.10": "2024-07-11", "24.10": "2025-07-10", "25.04": "2026-01-15",
	},
	"alpine": {
		"3.10": "2021-05-01", "3.11": "2021-11-01", "3.12": "2022-05-01", "3.13": "2022-11-01",
		"3.14": "2023-05-01", "3.15": "2023-11-01", "3.16": "2024-05-23", "3.17": "2024-11-22",
		"3.18": "2025-05-09", "3.19": "2025-11-01", "3.20": "2026-04-01", "3.21": "2026-11-01",
		"3.22": "2027-05-01",
	},
}

// EndOfLife returns the end of security support of an OS release, if the
// table knows it.
func EndOfLife(id, versionID string) (time.Time, string, bool) {
	id = strings.ToLower(id)
	v := versionID
	switch id {
	case "alpine":
		parts := strings.SplitN(v, ".", 3)
		if len(parts) >= 2 {
			v = parts[0] + "." + parts[1]
		}
	case "debian":
		v, _, _ = strings.Cut(v, ".")
	}
	s, ok := eolTable[id][v]
	if !ok {
		return time.Time{}, "", false
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, "", false
	}
	name := map[string]string{"debian": "Debian", "ubuntu": "Ubuntu", "alpine": "Alpine"}[id] + " " + v
	return t, name, true
}
