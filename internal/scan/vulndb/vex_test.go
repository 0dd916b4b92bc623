package vulndb

import (
	"errors"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/scan"
)

const imageDigest = "sha256:4f2a0d1a8f3c5b6e7d8c9b0a1f2e3d4c5b6a7980f1e2d3c4b5a69788a9b0c1d2"

func TestApplyVEX(t *testing.T) {
	d := realDB(t)
	openssh := scan.Package{Name: "openssh-server", Source: "openssh", Version: "1:8.9p1-3ubuntu0.7", Ecosystem: "Ubuntu:22.04",
		PURL: "pkg:deb/ubuntu/openssh-server@1:8.9p1-3ubuntu0.7?arch=amd64&distro=ubuntu-22.04", Location: "/var/lib/dpkg/status"}
	smallvec := pkg("smallvec", "1.6.0", "crates.io")
	smallvec.PURL = "pkg:cargo/smallvec@1.6.0"
	vulns := match(t, d, openssh, smallvec)
	if len(vulns) != 2 {
		t.Fatalf("findings = %v", ids(vulns))
	}
	parse := func(doc string) *VEXDocument {
		t.Helper()
		v, err := ParseOpenVEX([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	suppressed := func(vs []scan.Vulnerability) map[string]string {
		m := map[string]string{}
		for _, v := range vs {
			m[v.ID] = v.Suppressed
		}
		return m
	}

	// By CVE alias and image digest (as a pkg:oci purl), narrowed to the
	// package by subcomponent.
	byImage := parse(`{
	  "@context": "https://openvex.dev/ns/v0.2.0",
	  "@id": "https://example.com/vex/1", "author": "security@example.com",
	  "timestamp": "2024-07-02T00:00:00Z", "version": 1,
	  "statements": [{
	    "vulnerability": {"name": "CVE-2024-6387"},
	    "products": [{"@id": "pkg:oci/app@` + strings.Replace(imageDigest, ":", "%3A", 1) + `?repository_url=registry.example.com/app",
	                  "subcomponents": [{"@id": "pkg:deb/ubuntu/openssh-server@1:8.9p1-3ubuntu0.7?arch=amd64"}]}],
	    "status": "not_affected",
	    "justification": "vulnerable_code_not_in_execute_path",
	    "impact_statement": "sshd is never started in this image"
	  }]
	}`)
	got := suppressed(ApplyVEX(vulns, imageDigest, byImage))
	if got["UBUNTU-CVE-2024-6387"] != "vex: not_affected: vulnerable_code_not_in_execute_path" || got["RUSTSEC-2021-0003"] != "" {
		t.Errorf("by image: %v", got)
	}
	// The input is not modified.
	if vulns[0].Suppressed != "" || vulns[1].Suppressed != "" {
		t.Error("ApplyVEX changed its input")
	}
	// Another image's VEX does not apply.
	if got := suppressed(ApplyVEX(vulns, "sha256:"+strings.Repeat("0", 64), byImage)); got["UBUNTU-CVE-2024-6387"] != "" {
		t.Errorf("other image: %v", got)
	}

	// By advisory id and package purl (v0.0.1 string forms), then a later
	// statement saying it is affected after all puts it back.
	byPackage := parse(`{
	  "@context": "https://openvex.dev/ns",
	  "@id": "https://example.com/vex/2", "author": "dev", "timestamp": "2024-01-01T00:00:00Z",
	  "statements": [{"vulnerability": "RUSTSEC-2021-0003", "products": ["pkg:cargo/smallvec@1.6.0"], "status": "fixed"}]
	}`)
	got = suppressed(ApplyVEX(vulns, imageDigest, byPackage))
	if got["RUSTSEC-2021-0003"] != "vex: fixed" || got["UBUNTU-CVE-2024-6387"] != "" {
		t.Errorf("by package: %v", got)
	}
	later := parse(`{
	  "@context": "https://openvex.dev/ns/v0.2.0",
	  "@id": "https://example.com/vex/3", "author": "dev", "timestamp": "2024-03-01T00:00:00Z",
	  "statements": [{"vulnerability": {"name": "GHSA-43w2-9j62-hq99"}, "products": [{"@id": "pkg:cargo/smallvec"}], "status": "under_investigation"}]
	}`)
	for _, order := range [][]*VEXDocument{{byPackage, later}, {later, byPackage}} {
		if got := suppressed(ApplyVEX(vulns, imageDigest, order...)); got["RUSTSEC-2021-0003"] != "" {
			t.Errorf("the later under_investigation statement should win: %v", got)
		}
	}
	// A statement about another version does not apply.
	other := parse(`{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "x", "author": "dev", "timestamp": "2024-01-01T00:00:00Z",
	  "statements": [{"vulnerability": {"name": "CVE-2021-25900"}, "products": [{"@id": "pkg:cargo/smallvec@1.6.1"}], "status": "not_affected", "justification": "component_not_present"}]}`)
	if got := suppressed(ApplyVEX(vulns, imageDigest, other)); got["RUSTSEC-2021-0003"] != "" {
		t.Errorf("other version: %v", got)
	}
	// The whole image by bare digest, by hash.
	whole := parse(`{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "y", "author": "ops", "timestamp": "2024-01-01T00:00:00Z",
	  "statements": [
	    {"vulnerability": {"name": "CVE-2024-6387"}, "products": [{"@id": "` + imageDigest + `"}], "status": "not_affected", "impact_statement": "no sshd"},
	    {"vulnerability": {"name": "CVE-2021-25900"}, "products": [{"@id": "registry.example.com/app", "hashes": {"sha-256": "` + strings.TrimPrefix(imageDigest, "sha256:") + `"}}], "status": "not_affected", "justification": "inline_mitigations_already_exist"}
	  ]}`)
	got = suppressed(ApplyVEX(vulns, imageDigest, whole))
	if got["UBUNTU-CVE-2024-6387"] != "vex: not_affected: no sshd" || got["RUSTSEC-2021-0003"] != "vex: not_affected: inline_mitigations_already_exist" {
		t.Errorf("whole image: %v", got)
	}
}

func TestParseOpenVEXErrors(t *testing.T) {
	for _, doc := range []string{
		`not json`,
		`{"@context": "https://example.com/other", "statements": []}`,
		`{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"products": [{"@id": "x"}], "status": "fixed"}]}`,
		`{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "CVE-1"}, "status": "fixed"}]}`,
		`{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "x"}], "status": "maybe"}]}`,
		`{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "x"}], "status": "not_affected"}]}`,
	} {
		if _, err := ParseOpenVEX([]byte(doc)); !errors.Is(err, ErrBadVEX) {
			t.Errorf("%s: error = %v, want ErrBadVEX", doc, err)
		}
	}
}

func FuzzParseOpenVEX(f *testing.F) {
	f.Add([]byte(`{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:oci/a@sha256%3Aab","subcomponents":[{"@id":"pkg:deb/debian/x@1"}]}],"status":"not_affected","justification":"component_not_present"}]}`))
	f.Add([]byte(`{"@context":"https://openvex.dev/ns","statements":[{"vulnerability":"CVE-1","products":["pkg:npm/a@1"],"status":"fixed"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParseOpenVEX(b)
		if err != nil {
			return
		}
		v := scan.Vulnerability{ID: "CVE-1", Package: scan.Package{PURL: "pkg:npm/a@1"}}
		_ = ApplyVEX([]scan.Vulnerability{v}, "sha256:ab", doc)
	})
}
