package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// run executes the CLI in-process and returns its combined output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	code, out, errs := cli(t, args...)
	return out + errs, code
}

func TestKeysVerifyQueueShowCLI(t *testing.T) {
	in := servertest.Start(t, nil)
	t.Setenv("AIRLOCK_SERVER", in.URL)
	t.Setenv("AIRLOCK_TOKEN", in.AdminToken)
	t.Setenv("AIRLOCK_CREDENTIALS", filepath.Join(t.TempDir(), "creds.json"))
	dir := t.TempDir()

	out, code := run(t, "keys", "generate", "--type", "ed25519", "--out", filepath.Join(dir, "k"))
	if code != 0 || !strings.Contains(out, "signing.key (mode 0600)") {
		t.Fatalf("keys generate: %d %s", code, out)
	}
	out, code = run(t, "keys", "public")
	if code != 0 || !strings.HasPrefix(out, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("keys public: %d %s", code, out)
	}
	pub := filepath.Join(dir, "airlock.pub")
	if err := os.WriteFile(pub, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}

	pusher := in.Token(t, "ci", store.RolePusher)
	img := in.PushRandom(t, "team/app:1", "ci", pusher, 256, 1)
	d, _ := img.Digest()
	out, code = run(t, "queue")
	if code != 0 || !strings.Contains(out, d.String()) || !strings.Contains(out, "REVIEW") || !strings.Contains(out, "not-imported") {
		t.Fatalf("queue: %d %s", code, out)
	}
	out, code = run(t, "policy", "default")
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(out), 0o644); err != nil || code != 0 {
		t.Fatal(err)
	}
	out, code = run(t, "policy", "test", pol, d.String())
	if code != 1 || !strings.Contains(out, "stage-not-run") || !strings.Contains(out, "REVIEW") {
		t.Fatalf("policy test: %d %s", code, out)
	}
	out, code = run(t, "approve", d.String(), "--reason", "cli test")
	if code != 0 || !strings.Contains(out, "approved") || !strings.Contains(out, "signed attestation") {
		t.Fatalf("approve: %d %s", code, out)
	}
	ref := in.Host + "/team/app@" + d.String()
	out, code = run(t, "verify", ref, "--key", pub)
	if code != 0 || !strings.Contains(out, "Verified: "+d.String()) {
		t.Fatalf("verify: %d %s", code, out)
	}
	out, code = run(t, "verify", ref, "--key", filepath.Join(dir, "k", "signing.pub"))
	if code != 1 || !strings.Contains(out, "signed by another key") {
		t.Fatalf("verify with the wrong key: %d %s", code, out)
	}
	out, code = run(t, "verify", ref)
	if code != 2 {
		t.Fatalf("verify without --key: %d %s", code, out)
	}
	out, code = run(t, "show", d.String())
	for _, want := range []string{"Source:       pushed", "Policy:       airlock-strict", "Approvals:    1 required", "admin (approved", "Attestations:", "sha256-", "History:", "Audit:", "attestation.created"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if _, code = run(t, "revoke", d.String(), "--reason", "bad"); code != 0 {
		t.Fatal("revoke")
	}
	out, code = run(t, "verify", ref, "--key", pub)
	if code != 1 || !strings.Contains(out, "was revoked") {
		t.Fatalf("verify a revoked digest: %d %s", code, out)
	}
}
