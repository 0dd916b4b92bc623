package detect

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/scan"
)

func TestNames(t *testing.T) {
	d, err := newNames(Config{Trusted: []string{"registry.example.com/team/ngnix-proxy"}})
	if err != nil {
		t.Fatal(err)
	}
	nd := d.(*nameDetector)
	cases := []struct {
		repo, want, contains string
	}{
		{"ngnix", "AIRLOCK-NAME-TYPOSQUAT", `"nginx"`},
		{"docker.io/library/alpline", "AIRLOCK-NAME-TYPOSQUAT", `"alpine"`},
		{"library/alpline", "AIRLOCK-NAME-TYPOSQUAT", "edit distance 1"},
		{"someone/ngnix", "AIRLOCK-NAME-TYPOSQUAT", `"nginx"`},
		{"ubuntv", "", ""}, // too short for distance 1? ubuntu has 6 letters: flagged
		{"pyth0n", "AIRLOCK-NAME-TYPOSQUAT", "homoglyphs"},
		{"rnariadb", "AIRLOCK-NAME-TYPOSQUAT", "homoglyphs"},
		{"mongo-db", "", ""},
		{"post_gres", "AIRLOCK-NAME-TYPOSQUAT", "delimiters"},
		{"nginx-official", "AIRLOCK-NAME-TYPOSQUAT", "affix official"},
		{"ghcr.io/library/nginx", "AIRLOCK-NAME-LIBRARY-ELSEWHERE", "imitates"},
		{"docker.io/libary/redis", "AIRLOCK-NAME-FAKE-NAMESPACE", "libary"},
		{"docker.io/someone/redis", "AIRLOCK-NAME-OFFICIAL-ELSEWHERE", "not the Docker Official Image"},
		{"centos:7", "AIRLOCK-NAME-FORMER-OFFICIAL", "no longer"},
		{"nginx", "", ""},
		{"docker.io/library/postgres:16", "", ""},
		{"registry.example.com/team/ngnix-proxy", "", ""},
		{"ghcr.io/acme/billing-service", "", ""},
	}
	for _, c := range cases {
		got := nd.Check(c.repo)
		if c.repo == "ubuntv" {
			if len(got) == 0 || got[0].ID != "AIRLOCK-NAME-TYPOSQUAT" {
				t.Errorf("ubuntv: %+v", got)
			}
			continue
		}
		if c.want == "" {
			if len(got) > 0 {
				t.Errorf("%s: unexpected %+v", c.repo, got)
			}
			continue
		}
		found := false
		for _, g := range got {
			if g.ID == c.want && strings.Contains(g.Evidence, c.contains) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want %s with %q, got %+v", c.repo, c.want, c.contains, got)
		}
	}
}

func TestDamerau(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"nginx", "ngnix", 1}, {"alpine", "alpline", 1}, {"redis", "redis", 0}, {"abc", "", 3}, {"ca", "abc", 3}} {
		if got := damerau(c.a, c.b); got != c.d {
			t.Errorf("damerau(%s,%s)=%d want %d", c.a, c.b, got, c.d)
		}
	}
}

func FuzzNames(f *testing.F) {
	d, err := newNames(Config{})
	if err != nil {
		f.Fatal(err)
	}
	nd := d.(*nameDetector)
	f.Add("docker.io/library/ngnix:latest@sha256:00")
	f.Add("a/b/c/d")
	f.Fuzz(func(t *testing.T, repo string) {
		_ = nd.Check(repo)
	})
}

func FuzzPasswd(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\ntoor:x:000:0::/:/bin/sh\n#c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range UIDZeroUsers(b) {
			if strings.Contains(u, "\n") {
				t.Fatalf("user %q spans lines", u)
			}
		}
	})
}

func TestUIDZero(t *testing.T) {
	got := UIDZeroUsers([]byte("root:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/:/sbin/nologin\ntoor:x:000:0::/:/bin/sh\nbad\n"))
	if strings.Join(got, ",") != "root,toor" {
		t.Fatalf("uid 0 users: %v", got)
	}
}

func TestEndOfLife(t *testing.T) {
	for _, c := range []struct {
		id, v string
		ok    bool
		date  string
	}{{"debian", "10", true, "2024-06-30"}, {"debian", "12.5", true, "2028-06-30"}, {"alpine", "3.19.1", true, "2025-11-01"}, {"ubuntu", "22.04", true, "2027-06-01"}, {"fedora", "40", false, ""}} {
		d, _, ok := scan.EndOfLife(c.id, c.v)
		if ok != c.ok || ok && d.Format("2006-01-02") != c.date {
			t.Errorf("%s %s: %v %v", c.id, c.v, d, ok)
		}
	}
}
