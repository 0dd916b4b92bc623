package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/admission"
)

// deploy/ is exactly what `airlock admission manifests --out` writes with
// the default options: regenerate it with
//
//	go run ./cmd/airlock admission manifests --out deploy
func TestDeployMatchesManifestsCommand(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := cli(t, "admission", "manifests", "--out", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, stdout, stderr := cli(t, "admission", "manifests")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var joined strings.Builder
	for _, name := range []string{"airlock.yaml", "webhooks.yaml", "policy.yaml"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(committed) {
			t.Errorf("deploy/%s differs from `airlock admission manifests`; regenerate: go run ./cmd/airlock admission manifests --out deploy", name)
		}
		joined.Write(got)
	}
	if stdout != joined.String() {
		t.Error("the printed stream differs from the files written with --out")
	}
}

func TestAdmissionCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if code, out, stderr := cli(t, "admission", "cert", "--out", dir, "--host", "webhook.corp.example"); code != 0 || !strings.Contains(out, "airlock-webhook.airlock.svc") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tls.key: %v %v", fi, err)
	}
	if code, _, _ := cli(t, "admission", "cert", "--out", dir); code != 2 {
		t.Errorf("overwriting certificates: exit %d, want 2", code)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	code, out, stderr := cli(t, "admission", "manifests", "--cert-dir", dir, "--registry-host", "registry.corp.example", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var list struct {
		Kind  string
		Items []map[string]any
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "List" {
		t.Fatalf("-o json: %v %.200s", err, out)
	}
	var secret, bundle bool
	for _, it := range list.Items {
		switch it["kind"] {
		case "Secret":
			secret = it["metadata"].(map[string]any)["name"] == admission.TLSSecret
		case "ValidatingWebhookConfiguration":
			b, _ := json.Marshal(it)
			bundle = strings.Contains(string(b), `"caBundle":"`) && len(ca) > 0
		}
	}
	if !secret || !bundle {
		t.Errorf("--cert-dir: secret %v, caBundle %v", secret, bundle)
	}
	for _, args := range [][]string{
		{"admission", "manifests", "--registry-host", "evil.com/path"},
		{"admission", "manifests", "--cert-dir", filepath.Join(t.TempDir(), "none")},
		{"admission", "manifests", "-o", "xml"},
		{"admission", "cert"},
		{"admission", "manifests", "extra"},
	} {
		if code, _, _ := cli(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, out, _ := cli(t, "admission", "manifests", "--help"); code != 0 || !strings.Contains(out, "Example") && !strings.Contains(out, "Examples") {
		t.Errorf("--help: %d %.200s", code, out)
	}
}

// The admission section is configuration like any other: --webhook-addr is
// an alias of --admission-webhook-addr, and bad values are usage errors.
func TestServeAdmissionConfig(t *testing.T) {
	code, out, stderr := cli(t, "serve", "--data", t.TempDir(), "--webhook-addr", "127.0.0.1:9443", "--admission-exempt", "legacy-*",
		"--admission-namespaces", "staging-*=warn", "--print-config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"webhookAddr: 127.0.0.1:9443", "- legacy-*", "- staging-*=warn", "mode: enforce", "registryHosts:"} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	for _, args := range [][]string{
		{"--admission-mode", "lenient"},
		{"--admission-namespaces", "staging"},
		{"--admission-tls-cert", "only-the-cert.pem"},
	} {
		if code, _, _ := cli(t, append([]string{"serve", "--data", t.TempDir(), "--print-config"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
