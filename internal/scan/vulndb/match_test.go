package vulndb

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/scan"
)

func pkg(name, ver, eco string) scan.Package {
	return scan.Package{Name: name, Version: ver, Ecosystem: eco, Location: "/app/" + name, Layer: "sha256:layer"}
}

// TestMatchRealRecords matches packages at vulnerable and fixed versions
// against the real records, checking ids, fixed versions and severities
// computed from the records' CVSS vectors.
func TestMatchRealRecords(t *testing.T) {
	d := realDB(t)
	type want struct {
		id, fixed, severity string
		score               float64
		vendor              string
	}
	for _, tc := range []struct {
		name    string
		pkg     scan.Package
		want    []want
		allIDs  []string // when set, exactly these advisories
		notIDs  []string
		howMany int // when set, exactly this many findings
	}{
		{
			name: "x/net pseudo-version before the fix",
			pkg:  pkg("golang.org/x/net", "v0.0.0-20220805013720-a33c5aa5df48", "Go"),
			want: []want{{id: "GO-2022-0969", fixed: "0.0.0-20220906165146-f3363e06e74c", severity: scan.SeverityUnknown}},
		},
		{
			name:   "x/net at the fixing pseudo-version",
			pkg:    pkg("golang.org/x/net", "v0.0.0-20220906165146-f3363e06e74c", "Go"),
			notIDs: []string{"GO-2022-0969"},
			want:   []want{{id: "GO-2022-1144", fixed: "0.4.0", severity: scan.SeverityUnknown}},
		},
		{name: "x/net current", pkg: pkg("golang.org/x/net", "v0.56.0", "Go"), allIDs: []string{}},
		{
			name: "stdlib as a Go toolchain tag",
			pkg:  pkg("stdlib", "go1.21.0", "Go"),
			want: []want{
				{id: "GO-2023-2041", fixed: "1.21.1", severity: scan.SeverityUnknown},
				// fixed only on the 1.22 line for 1.21 users
				{id: "GO-2024-3105", fixed: "1.22.7", severity: scan.SeverityUnknown},
			},
			// 75 records cover 1.21.0, counted independently by walking the
			// records' events in order.
			howMany: 75,
		},
		{name: "stdlib 1.21.1 has the 1.21.1 fixes", pkg: pkg("stdlib", "go1.21.1", "Go"), notIDs: []string{"GO-2023-2041", "GO-2023-2043", "GO-2023-2044", "GO-2023-2045"}},
		{name: "stdlib current", pkg: pkg("stdlib", "go1.25.13", "Go"), allIDs: []string{}},
		{
			name: "django 3.2.0 (name as published: Django)",
			pkg:  pkg("Django", "3.2.0", "PyPI"),
			allIDs: []string{"PYSEC-2021-7", "PYSEC-2021-99", "PYSEC-2022-1", "PYSEC-2022-20", "PYSEC-2022-213", "PYSEC-2022-3",
				"PYSEC-2022-304", "PYSEC-2023-13", "PYSEC-2023-222", "PYSEC-2023-226", "PYSEC-2024-47"},
			want: []want{{id: "PYSEC-2021-7", fixed: "3.2.1", severity: scan.SeverityUnknown}, {id: "PYSEC-2024-47", fixed: "3.2.25", severity: scan.SeverityUnknown}},
		},
		{name: "django 5.1", pkg: pkg("django", "5.1", "PyPI"), allIDs: []string{}},
		{
			name: "urllib3 1.26.0, severity from the record's CVSS v3.1 vector",
			pkg:  pkg("urllib3", "1.26.0", "PyPI"),
			want: []want{
				{id: "PYSEC-2023-192", fixed: "1.26.17", severity: scan.SeverityHigh, score: 8.1},
				{id: "PYSEC-2023-212", fixed: "1.26.18", severity: scan.SeverityMedium, score: 4.2},
				{id: "PYSEC-2021-59", fixed: "1.26.4", severity: scan.SeverityUnknown},
			},
			howMany: 4,
		},
		{
			name:   "smallvec 1.6.0",
			pkg:    pkg("smallvec", "1.6.0", "crates.io"),
			allIDs: []string{"RUSTSEC-2021-0003"},
			want:   []want{{id: "RUSTSEC-2021-0003", fixed: "1.6.1", severity: scan.SeverityCritical, score: 9.8}},
		},
		{
			name: "smallvec 0.6.13: the interval's own fix, not the other line's",
			pkg:  pkg("smallvec", "0.6.13", "crates.io"),
			want: []want{{id: "RUSTSEC-2021-0003", fixed: "0.6.14", severity: scan.SeverityCritical, score: 9.8}},
		},
		{name: "smallvec 0.6.14", pkg: pkg("smallvec", "0.6.14", "crates.io"), notIDs: []string{"RUSTSEC-2021-0003"}},
		{name: "smallvec 1.6.1", pkg: pkg("smallvec", "1.6.1", "crates.io"), allIDs: []string{}},
		{
			name: "hyper 0.10.1, CVSS v3.0 vector",
			pkg:  pkg("hyper", "0.10.1", "crates.io"),
			want: []want{
				{id: "RUSTSEC-2017-0002", fixed: "0.10.2", severity: scan.SeverityMedium, score: 5.3},
				{id: "RUSTSEC-2021-0079", fixed: "0.14.10", severity: scan.SeverityCritical, score: 9.1},
			},
		},
		{
			name:   "openssh on Ubuntu 22.04, by source package",
			pkg:    scan.Package{Name: "openssh-server", Source: "openssh", Version: "1:8.9p1-3ubuntu0.7", Ecosystem: "Ubuntu:22.04", Location: "/var/lib/dpkg/status"},
			allIDs: []string{"UBUNTU-CVE-2024-6387"},
			want:   []want{{id: "UBUNTU-CVE-2024-6387", fixed: "1:8.9p1-3ubuntu0.10", severity: scan.SeverityHigh, score: 8.1, vendor: scan.SeverityHigh}},
		},
		{
			name:   "openssh fixed (0.10 > 0.7 in dpkg order)",
			pkg:    scan.Package{Name: "openssh-server", Source: "openssh", Version: "1:8.9p1-3ubuntu0.10", Ecosystem: "Ubuntu:22.04:LTS"},
			allIDs: []string{},
		},
		{
			name:   "openssh on 20.04: the record has no 20.04 entry",
			pkg:    scan.Package{Name: "openssh-server", Source: "openssh", Version: "1:8.2p1-4ubuntu0.5", Ecosystem: "Ubuntu:20.04"},
			allIDs: []string{},
		},
		{
			name:   "liblzma5 (source xz-utils) on 24.04",
			pkg:    scan.Package{Name: "liblzma5", Source: "xz-utils", Version: "5.4.5-0.1", Ecosystem: "Ubuntu:24.04"},
			allIDs: []string{"UBUNTU-CVE-2024-3094"},
			want:   []want{{id: "UBUNTU-CVE-2024-3094", fixed: "5.4.5-0.3", severity: scan.SeverityCritical, score: 10, vendor: scan.SeverityCritical}},
		},
		{
			name: "libc6 without a source name: found through the notice's binaries",
			pkg:  scan.Package{Name: "libc6", Version: "2.35-0ubuntu3.1", Ecosystem: "Ubuntu:22.04"},
			want: []want{{id: "USN-6409-1", fixed: "2.35-0ubuntu3.4", severity: scan.SeverityUnknown}},
		},
		{
			name: "libxml2 notice: worst CVSS of the CVEs it fixes, Ubuntu priority as vendor severity",
			pkg:  scan.Package{Name: "libxml2", Version: "2.9.13+dfsg-1ubuntu0.1", Ecosystem: "Ubuntu:22.04"},
			want: []want{{id: "USN-5760-1", fixed: "2.9.13+dfsg-1ubuntu0.2", severity: scan.SeverityHigh, score: 7.8, vendor: scan.SeverityMedium}},
		},
		{
			name:   "systemd on 20.04: no fix published",
			pkg:    scan.Package{Name: "systemd", Version: "245.4-4ubuntu3.22", Ecosystem: "Ubuntu:20.04"},
			allIDs: []string{"UBUNTU-CVE-2023-26604"},
			want:   []want{{id: "UBUNTU-CVE-2023-26604", fixed: "", severity: scan.SeverityHigh, score: 7.8, vendor: scan.SeverityLow}},
		},
		{
			name:   "gnutls28 on plain 18.04 is not matched by Ubuntu Pro (ESM) entries",
			pkg:    scan.Package{Name: "libgnutls30", Source: "gnutls28", Version: "3.5.18-1ubuntu1.6", Ecosystem: "Ubuntu:18.04"},
			allIDs: []string{},
		},
		{
			name:   "gnutls28 on Ubuntu Pro 18.04",
			pkg:    scan.Package{Name: "libgnutls30", Source: "gnutls28", Version: "3.5.18-1ubuntu1.6", Ecosystem: "Ubuntu:Pro:18.04:LTS"},
			allIDs: []string{"UBUNTU-CVE-2023-0361"},
		},
		{
			name:   "last_affected: py 1.11.0 is the last affected version",
			pkg:    pkg("py", "1.11.0", "PyPI"),
			allIDs: []string{"PYSEC-2022-42969"},
			want:   []want{{id: "PYSEC-2022-42969", fixed: "", severity: scan.SeverityUnknown}},
		},
		{name: "last_affected: py 1.11.1 is not", pkg: pkg("py", "1.11.1", "PyPI"), allIDs: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := match(t, d, tc.pkg)
			got := ids(vs)
			if tc.allIDs != nil && !reflect.DeepEqual(got, tc.allIDs) && !(len(got) == 0 && len(tc.allIDs) == 0) {
				t.Errorf("advisories = %v, want %v", got, tc.allIDs)
			}
			if tc.howMany != 0 && len(vs) != tc.howMany {
				t.Errorf("%d findings, want %d: %v", len(vs), tc.howMany, got)
			}
			for _, id := range tc.notIDs {
				if find(vs, id) != nil {
					t.Errorf("%s reported", id)
				}
			}
			for _, w := range tc.want {
				v := find(vs, w.id)
				if v == nil {
					t.Errorf("%s not reported (got %v)", w.id, got)
					continue
				}
				if v.Fixed != w.fixed || v.Severity != w.severity || v.CVSSScore != w.score || v.VendorSeverity != w.vendor {
					t.Errorf("%s: fixed %q severity %s score %.1f vendor %q; want %q %s %.1f %q",
						w.id, v.Fixed, v.Severity, v.CVSSScore, v.VendorSeverity, w.fixed, w.severity, w.score, w.vendor)
				}
			}
			for _, v := range vs {
				if v.Package != tc.pkg || v.Installed != tc.pkg.Version || v.Snapshot != d.Snapshot() || v.Snapshot == "" {
					t.Errorf("%s: finding does not carry the package, installed version and snapshot: %+v", v.ID, v)
				}
				if v.Status == "" || v.Severity == "" {
					t.Errorf("%s: status %q severity %q", v.ID, v.Status, v.Severity)
				}
			}
		})
	}
}

func TestMatchAliases(t *testing.T) {
	d := realDB(t)
	vs := match(t, d, pkg("golang.org/x/net", "v0.0.0-20220805013720-a33c5aa5df48", "Go"))
	v := find(vs, "GO-2022-0969")
	if v == nil || !reflect.DeepEqual(v.Aliases, []string{"CVE-2022-27664", "GHSA-69cg-p879-7622"}) {
		t.Errorf("GO-2022-0969 aliases = %+v", v)
	}
	// A per-CVE distro record is an alias of its CVE; a notice lists the
	// records it derives from (upstream).
	vs = match(t, d, scan.Package{Name: "openssh-server", Source: "openssh", Version: "1:8.9p1-3ubuntu0.7", Ecosystem: "Ubuntu:22.04"},
		scan.Package{Name: "libc6", Version: "2.35-0ubuntu3.1", Ecosystem: "Ubuntu:22.04"})
	if v := find(vs, "UBUNTU-CVE-2024-6387"); v == nil || !reflect.DeepEqual(v.Aliases, []string{"CVE-2024-6387"}) {
		t.Errorf("UBUNTU-CVE-2024-6387 aliases = %+v", v)
	}
	if v := find(vs, "USN-6409-1"); v == nil || !reflect.DeepEqual(v.Aliases, []string{"UBUNTU-CVE-2023-4527", "UBUNTU-CVE-2023-4911"}) {
		t.Errorf("USN-6409-1 aliases = %+v", v)
	}
}

// TestWithdrawnNeverMatches: withdrawn records whose ranges cover the
// version are not reported; the same records without "withdrawn" are.
func TestWithdrawnNeverMatches(t *testing.T) {
	cases := []struct {
		file string
		pkg  scan.Package
	}{
		{"go/GO-2022-0617.json", pkg("k8s.io/kubernetes", "v1.20.0", "Go")},
		{"crates/RUSTSEC-2023-0002.json", pkg("git2", "0.15.0", "crates.io")},
		{"crates/RUSTSEC-2025-0007.json", pkg("ring", "0.17.8", "crates.io")},
	}
	d := realDB(t)
	for _, c := range cases {
		rec := readRecord(t, c.file)
		if rec["withdrawn"] == nil {
			t.Fatalf("%s is not withdrawn", c.file)
		}
		if v := find(match(t, d, c.pkg), rec["id"].(string)); v != nil {
			t.Errorf("withdrawn %s reported for %s %s", v.ID, c.pkg.Name, c.pkg.Version)
		}
		// The control: not withdrawn, it matches.
		delete(rec, "withdrawn")
		rec["modified"] = "2099-01-01T00:00:00Z"
		d2 := openDB(t)
		if _, err := d2.Import(context.Background(), writeJSON(t, t.TempDir(), "r.json", rec)); err != nil {
			t.Fatal(err)
		}
		if find(match(t, d2, c.pkg), rec["id"].(string)) == nil {
			t.Errorf("control: %s without withdrawn does not match %s %s, so the test proves nothing", rec["id"], c.pkg.Name, c.pkg.Version)
		}
	}
	// PyPA's YAML form.
	for _, c := range []struct{ id, name, ver string }{{"PYSEC-2023-73", "redis", "4.5.3"}, {"PYSEC-2022-43059", "aiohttp", "3.8.1"}} {
		if v := find(match(t, d, pkg(c.name, c.ver, "PyPI")), c.id); v != nil {
			t.Errorf("withdrawn %s reported", c.id)
		}
	}
}

// TestLimit: versions at or above a limit event are outside the range.
func TestLimit(t *testing.T) {
	rec := readRecord(t, "crates/RUSTSEC-2021-0003.json")
	rec["id"], rec["modified"] = "RUSTSEC-TEST-LIMIT", "2099-01-01T00:00:00Z"
	aff := rec["affected"].([]any)[0].(map[string]any)
	aff["ranges"] = []any{map[string]any{"type": "SEMVER", "events": []any{
		map[string]any{"introduced": "0.6.3"}, map[string]any{"limit": "1.2.0"},
	}}}
	d := openDB(t)
	if _, err := d.Import(context.Background(), writeJSON(t, t.TempDir(), "r.json", rec)); err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"0.6.2": false, "0.6.3": true, "1.1.9": true, "1.2.0": false, "1.6.0": false} {
		got := find(match(t, d, pkg("smallvec", v, "crates.io")), "RUSTSEC-TEST-LIMIT") != nil
		if got != want {
			t.Errorf("smallvec %s affected = %v, want %v", v, got, want)
		}
	}
}

// TestOwnedByDistro: a language package whose files a distro package owns
// gets no upstream advisories; the same package installed by pip does.
func TestOwnedByDistro(t *testing.T) {
	d := realDB(t)
	p := pkg("urllib3", "1.26.0", "PyPI")
	if vs := match(t, d, p); len(vs) != 4 {
		t.Fatalf("pip-installed urllib3: %d findings, want 4", len(vs))
	}
	p.OwnedByDistro = true
	p.Location = "/usr/lib/python3/dist-packages/urllib3-1.26.0.dist-info/METADATA"
	if vs := match(t, d, p); len(vs) != 0 {
		t.Errorf("distro-owned urllib3: %v, want none", ids(vs))
	}
	// A distro package itself is never skipped.
	if vs := match(t, d, scan.Package{Name: "systemd", Version: "245.4-4ubuntu3.22", Ecosystem: "Ubuntu:20.04", OwnedByDistro: true}); len(vs) != 1 {
		t.Errorf("distro package with OwnedByDistro: %v", ids(vs))
	}
}

// TestDistroStates: a distribution's own status on an affected entry.
func TestDistroStates(t *testing.T) {
	p := scan.Package{Name: "bash", Version: "5.1-6ubuntu1", Ecosystem: "Ubuntu:22.04"}
	for _, tc := range []struct {
		field, value string
		want         string // "" = not reported
	}{
		{"", "", "affected"},
		{"status", "not-affected", ""},
		{"status", "Not affected", ""},
		{"status", "will not fix", "will-not-fix"},
		{"status", "ignored", "will-not-fix"},
		{"status", "deferred", "fix-deferred"},
		{"fix_status", "fix deferred", "fix-deferred"},
		{"urgency", "end-of-life", "will-not-fix"},
		{"status", "needed", "affected"},
	} {
		rec := readRecord(t, "ubuntu/UBUNTU-CVE-2022-3715.json")
		if tc.field != "" {
			es := rec["affected"].([]any)[0].(map[string]any)["ecosystem_specific"].(map[string]any)
			es[tc.field] = tc.value
		}
		d := openDB(t)
		if _, err := d.Import(context.Background(), writeJSON(t, t.TempDir(), "r.json", rec)); err != nil {
			t.Fatal(err)
		}
		vs := match(t, d, p)
		switch {
		case tc.want == "" && len(vs) != 0:
			t.Errorf("%s=%q: reported %+v, want nothing", tc.field, tc.value, vs)
		case tc.want != "" && (len(vs) != 1 || vs[0].Status != tc.want):
			t.Errorf("%s=%q: %+v, want status %s", tc.field, tc.value, vs, tc.want)
		case tc.want != "" && (vs[0].Fixed != "5.1-6ubuntu1.1" || vs[0].Severity != scan.SeverityHigh || vs[0].CVSSScore != 7.8 || vs[0].VendorSeverity != scan.SeverityMedium):
			t.Errorf("%s=%q: %+v", tc.field, tc.value, vs[0])
		}
	}
}

func TestSameEcosystem(t *testing.T) {
	for _, tc := range []struct {
		pkg, adv string
		want     bool
	}{
		{"Ubuntu:22.04", "Ubuntu:22.04:LTS", true},
		{"Ubuntu:22.04:LTS", "Ubuntu:22.04:LTS", true},
		{"Ubuntu:22.04", "Ubuntu:24.04:LTS", false},
		{"Ubuntu:18.04", "Ubuntu:Pro:18.04:LTS", false},
		{"Ubuntu:Pro:18.04:LTS", "Ubuntu:Pro:18.04:LTS", true},
		{"Ubuntu", "Ubuntu:20.04:LTS", true},
		{"Debian:12", "Debian:12", true},
		{"Debian:12.5", "Debian:12", true},
		{"Debian:11", "Debian:12", false},
		{"Alpine:3.19", "Alpine:v3.19", true},
		{"Alpine:v3.19", "Alpine:v3.20", false},
		{"Red Hat:enterprise_linux:9", "Red Hat:enterprise_linux:9::appstream", true},
		{"PyPI", "PyPI", true},
		{"pypi", "PyPI", true},
		{"npm", "PyPI", false},
	} {
		if got := sameEcosystem(tc.pkg, tc.adv); got != tc.want {
			t.Errorf("sameEcosystem(%q, %q) = %v", tc.pkg, tc.adv, got)
		}
	}
}

// TestMatchSkips: packages that cannot be matched are skipped, not errors.
func TestMatchSkips(t *testing.T) {
	d := realDB(t)
	vs := match(t, d,
		scan.Package{Name: "main", Version: "(devel)", Ecosystem: "Go"},
		scan.Package{Name: "nginx", Version: "1.25.3", Ecosystem: ""},
		scan.Package{Name: "golang.org/x/net", Version: "", Ecosystem: "Go"},
		scan.Package{Name: "x", Version: "1", Ecosystem: "NoSuchEcosystem"},
	)
	if len(vs) != 0 {
		t.Errorf("got %v", ids(vs))
	}
	if _, err := d.Match(context.Background(), nil); err != nil {
		t.Error(err)
	}
}

// TestEmptyDatabase: an empty database matches nothing and has the digest
// of an empty set.
func TestEmptyDatabase(t *testing.T) {
	d := openDB(t)
	if vs := match(t, d, pkg("django", "1.0", "PyPI")); len(vs) != 0 {
		t.Error(vs)
	}
	if d.Snapshot() != emptySnapshot || !strings.HasPrefix(emptySnapshot, "sha256:e3b0c442") {
		t.Errorf("snapshot = %s", d.Snapshot())
	}
	// Reopening finds the same file.
	dir := filepath.Dir(d.Path())
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Error(err)
	}
}

// TestDistroFamilies: Debian, Alpine and Red Hat records (none are in the
// test data, so a real Ubuntu record is re-targeted) are matched with their
// own version order and naming: source package for Debian and Alpine,
// binary or source package for RPM.
func TestDistroFamilies(t *testing.T) {
	retarget := func(eco, name string, events ...map[string]any) map[string]any {
		rec := readRecord(t, "ubuntu/UBUNTU-CVE-2022-3715.json")
		rec["id"] = "TEST-" + strings.ReplaceAll(eco, " ", "_")
		evs := []any{}
		for _, e := range events {
			evs = append(evs, e)
		}
		rec["affected"] = []any{map[string]any{
			"package": map[string]any{"ecosystem": eco, "name": name},
			"ranges":  []any{map[string]any{"type": "ECOSYSTEM", "events": evs}},
		}}
		return rec
	}
	dir := t.TempDir()
	writeJSON(t, dir, "debian.json", retarget("Debian:12", "glibc", map[string]any{"introduced": "0"}, map[string]any{"fixed": "2.36-9+deb12u3"}))
	writeJSON(t, dir, "alpine.json", retarget("Alpine:v3.19", "openssl", map[string]any{"introduced": "0"}, map[string]any{"fixed": "3.1.4-r1"}))
	writeJSON(t, dir, "redhat.json", retarget("Red Hat:enterprise_linux:9::baseos", "openssl", map[string]any{"introduced": "0"}, map[string]any{"fixed": "1:3.0.7-27.el9"}))
	d := openDB(t)
	if _, err := d.Import(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    scan.Package
		want string
	}{
		{scan.Package{Name: "libc6", Source: "glibc", Version: "2.36-9+deb12u2", Ecosystem: "Debian:12"}, "TEST-Debian:12"},
		{scan.Package{Name: "libc6", Source: "glibc", Version: "2.36-9+deb12u3", Ecosystem: "Debian:12"}, ""},
		{scan.Package{Name: "libc6", Source: "glibc", Version: "2.36-9+deb12u10", Ecosystem: "Debian:12"}, ""},
		{scan.Package{Name: "libc6", Source: "glibc", Version: "2.36-9+deb12u2", Ecosystem: "Debian:11"}, ""},
		{scan.Package{Name: "glibc", Version: "2.36-9+deb12u2", Ecosystem: "Debian:12"}, "TEST-Debian:12"},
		{scan.Package{Name: "libssl3", Source: "openssl", Version: "3.1.4-r0", Ecosystem: "Alpine:v3.19"}, "TEST-Alpine:v3.19"},
		{scan.Package{Name: "libssl3", Source: "openssl", Version: "3.1.4-r1", Ecosystem: "Alpine:v3.19"}, ""},
		{scan.Package{Name: "libssl3", Source: "openssl", Version: "3.1.4_rc1-r5", Ecosystem: "Alpine:v3.19"}, "TEST-Alpine:v3.19"},
		{scan.Package{Name: "openssl-libs", Source: "openssl", Version: "1:3.0.7-25.el9", Ecosystem: "Red Hat:enterprise_linux:9"}, "TEST-Red_Hat:enterprise_linux:9::baseos"},
		{scan.Package{Name: "openssl-libs", Source: "openssl", Version: "1:3.0.7-27.el9", Ecosystem: "Red Hat:enterprise_linux:9"}, ""},
		{scan.Package{Name: "openssl", Version: "3.0.7-28.el9", Ecosystem: "Red Hat:enterprise_linux:9"}, "TEST-Red_Hat:enterprise_linux:9::baseos"},
	} {
		got := ids(match(t, d, tc.p))
		want := []string{}
		if tc.want != "" {
			want = []string{tc.want}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s (%s) %s on %s: %v, want %v", tc.p.Name, tc.p.Source, tc.p.Version, tc.p.Ecosystem, got, want)
		}
	}
}
