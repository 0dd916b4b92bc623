package vulndb

import (
	"errors"
	"testing"

	"github.com/airlock-dev/airlock/internal/scan"
)

func TestCVSS3(t *testing.T) {
	for _, tc := range []struct {
		vector string
		score  float64
		sev    string
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, scan.SeverityCritical},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0, scan.SeverityCritical}, // xz backdoor
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1, scan.SeverityHigh},      // regreSSHion
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, scan.SeverityHigh},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, scan.SeverityHigh},
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:N", 7.4, scan.SeverityHigh},
		{"CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.0, scan.SeverityHigh},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, scan.SeverityMedium},
		{"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4, scan.SeverityMedium},
		{"CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", 5.5, scan.SeverityMedium},
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:L/A:N", 5.3, scan.SeverityMedium},
		{"CVSS:3.1/AV:A/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N", 4.2, scan.SeverityMedium},
		{"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6, scan.SeverityLow},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0, scan.SeverityLow},
		// temporal and environmental metrics do not change the base score
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:U/CR:L/MAV:P", 9.8, scan.SeverityCritical},
	} {
		c, err := ParseCVSS3(tc.vector)
		if err != nil {
			t.Errorf("%s: %v", tc.vector, err)
			continue
		}
		if c.Score != tc.score || c.Severity() != tc.sev {
			t.Errorf("%s = %.1f %s, want %.1f %s", tc.vector, c.Score, c.Severity(), tc.score, tc.sev)
		}
	}
	for _, bad := range []string{
		"", "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		"CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:Q",
	} {
		if _, err := ParseCVSS3(bad); !errors.Is(err, ErrBadVector) {
			t.Errorf("%q: error = %v, want ErrBadVector", bad, err)
		}
	}
}

func TestCVSS2(t *testing.T) {
	for _, tc := range []struct {
		vector string
		score  float64
		sev    string
	}{
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5, scan.SeverityHigh},
		{"AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0, scan.SeverityHigh},
		{"(AV:N/AC:M/Au:N/C:N/I:P/A:N)", 4.3, scan.SeverityMedium},
		{"AV:L/AC:L/Au:N/C:P/I:N/A:N", 2.1, scan.SeverityLow},
		{"AV:N/AC:L/Au:N/C:N/I:N/A:N", 0, scan.SeverityLow},
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P/E:F/RL:OF/RC:C", 7.5, scan.SeverityHigh},
	} {
		c, err := ParseCVSS2(tc.vector)
		if err != nil {
			t.Errorf("%s: %v", tc.vector, err)
			continue
		}
		if c.Score != tc.score || c.Severity() != tc.sev {
			t.Errorf("%s = %.1f %s, want %.1f %s", tc.vector, c.Score, c.Severity(), tc.score, tc.sev)
		}
	}
	for _, bad := range []string{"", "AV:N/AC:L/Au:N/C:P/I:P", "AV:N/AC:L/Au:N/C:P/I:P/A:X", "AV:N/AC:L/Au:N/C:P/I:P/A:P/Q:1"} {
		if _, err := ParseCVSS2(bad); !errors.Is(err, ErrBadVector) {
			t.Errorf("%q: error = %v, want ErrBadVector", bad, err)
		}
	}
}

func FuzzCVSS3(f *testing.F) {
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	f.Add("CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N/E:P")
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H/MAV:N")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseCVSS3(v)
		if err != nil {
			if !errors.Is(err, ErrBadVector) {
				t.Fatalf("error does not wrap ErrBadVector: %v", err)
			}
			return
		}
		if c.Score < 0 || c.Score > 10 || c.Severity() == "" {
			t.Fatalf("%q scored %v", v, c.Score)
		}
	})
}

func FuzzCVSS2(f *testing.F) {
	f.Add("AV:N/AC:L/Au:N/C:P/I:P/A:P")
	f.Add("(AV:N/AC:M/Au:S/C:C/I:N/A:N/E:U)")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := ParseCVSS2(v)
		if err != nil {
			if !errors.Is(err, ErrBadVector) {
				t.Fatalf("error does not wrap ErrBadVector: %v", err)
			}
			return
		}
		if c.Score < 0 || c.Score > 10 {
			t.Fatalf("%q scored %v", v, c.Score)
		}
	})
}
