package server_test

// Tests that run the peer tools people actually use against a real server:
// the OCI distribution-spec conformance suite, crane, oras and regctl. Each
// tool is installed at a pinned version by .ci/tools.sh.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.yaml.in/yaml/v3"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// tool finds a peer tool in AIRLOCK_TEST_TOOLS, then on PATH. A missing tool
// skips the test on a workstation but fails it in CI, which must never skip.
func tool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("AIRLOCK_TEST_TOOLS"); dir != "" {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not found in AIRLOCK_TEST_TOOLS or PATH; run `make test` (it installs the pinned tools with .ci/tools.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// toolRun is one invocation of a peer tool and what it printed.
type toolRun struct {
	args   []string
	output string // stdout and stderr interleaved
	err    error
}

// run executes a tool with env added to a minimal environment whose HOME and
// config directories are private to the test, so no tool reads or writes the
// real ~/.docker, ~/.regctl or credential helpers.
func run(t *testing.T, dir string, env []string, bin string, args ...string) toolRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "DOCKER_CONFIG=" + filepath.Join(dir, ".docker"), "XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"), "TMPDIR=" + os.TempDir()}, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return toolRun{args: append([]string{filepath.Base(bin)}, args...), output: out.String(), err: err}
}

func (r toolRun) String() string {
	return strings.Join(r.args, " ") + "\n" + r.output
}

// TestConformance runs the OCI distribution-spec conformance suite against
// repositories that skip vetting, where Airlock must behave like a plain
// registry. sha512 data is off: distribution storage addresses content by
// sha256 only and Airlock refuses sha512 with DIGEST_INVALID by design.
func TestConformance(t *testing.T) {
	bin := tool(t, "conformance")
	srv := servertest.Start(t, func(c *config.Config) {
		c.AllowUnvetted = []string{"conformance/**"}
		c.ForeignLayerURLs = []string{`^https://store\.example\.com/`}
	})
	secret := srv.Token(t, "conformance", store.RolePusher)
	results := t.TempDir()
	env := []string{
		"OCI_REGISTRY=" + srv.Host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_VERSION=1.1",
		"OCI_USERNAME=conformance",
		"OCI_PASSWORD=" + secret,
		"OCI_DATA_SHA512=false",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_RESULTS_DIR=" + results,
	}
	r := run(t, t.TempDir(), env, bin)
	summary := conformanceSummary(r.output)
	for _, l := range summary {
		t.Log(l)
	}
	if r.err != nil {
		t.Fatalf("conformance failed: %v\n%s", r.err, r.output)
	}

	// The binary exits 0 when it cannot even load its configuration, so the
	// verdict comes from the reports it writes, not from the exit code alone.
	var ju struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Disabled int `xml:"disabled,attr"`
		Suites   []struct {
			Cases []struct {
				Name   string `xml:"name,attr"`
				Status string `xml:"status,attr"`
				Out    string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(filepath.Join(results, "junit.xml"))
	if err != nil {
		t.Fatalf("conformance wrote no junit.xml: %v\n%s", err, r.output)
	}
	if err := xml.Unmarshal(b, &ju); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	if ju.Tests == 0 {
		t.Fatalf("conformance ran no tests\n%s", r.output)
	}
	if ju.Failures != 0 || ju.Errors != 0 {
		t.Errorf("conformance: %d FAIL, %d Error of %d tests", ju.Failures, ju.Errors, ju.Tests)
	}
	cases := 0
	for _, s := range ju.Suites {
		for _, c := range s.Cases {
			cases++
			switch c.Status {
			case "passed":
			case "skipped":
				t.Logf("skipped: %s", c.Name)
			default:
				t.Errorf("%s: %s\n%s", c.Name, c.Status, c.Out)
			}
		}
	}
	if cases == 0 {
		t.Errorf("junit.xml lists no test cases")
	}
	t.Logf("conformance: %d tests, %d passed, %d skipped, %d disabled", ju.Tests, ju.Tests-ju.Failures-ju.Errors-ju.Skipped-ju.Disabled, ju.Skipped, ju.Disabled)

	var res struct {
		APIs map[string]string `yaml:"apis"`
		Data map[string]string `yaml:"data"`
	}
	b, err = os.ReadFile(filepath.Join(results, "results.yaml"))
	if err != nil {
		t.Fatalf("conformance wrote no results.yaml: %v", err)
	}
	if err := yaml.Unmarshal(b, &res); err != nil {
		t.Fatalf("results.yaml: %v", err)
	}
	if len(res.APIs) == 0 || len(res.Data) == 0 {
		t.Fatalf("results.yaml lists no APIs or data:\n%s", b)
	}
	for kind, m := range map[string]map[string]string{"API": res.APIs, "data": res.Data} {
		for name, status := range m {
			if status == "FAIL" || status == "Error" {
				t.Errorf("%s %s: %s", kind, name, status)
			}
		}
	}
}

// conformanceSummary returns the result and count lines of the printed report.
func conformanceSummary(out string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "OCI Conformance Result:") {
			in = true
		}
		if in {
			if strings.TrimSpace(l) == "" {
				break
			}
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

// account is one token as a peer tool sees it: a private HOME holding the
// tool's credential file.
type account struct {
	name, secret, dir string
}

// peerClient drives one peer tool. Every function runs the real binary.
type peerClient struct {
	tool  string
	login func(t *testing.T, bin, host string, a account) toolRun
	// push uploads a small image or artifact holding content as file.
	push func(t *testing.T, bin string, a account, ref, file, content string) toolRun
	// digest finds the pushed manifest digest in what push printed.
	digest *regexp.Regexp
	// pull fetches ref and returns what it read back as file.
	pull func(t *testing.T, bin string, a account, ref, file string) (toolRun, string)
	// retag points tag at ref's digest in the same repository (a manifest PUT).
	retag func(t *testing.T, bin string, a account, ref, tag string) toolRun
}

var peerClients = []peerClient{
	{
		tool: "crane",
		login: func(t *testing.T, bin, host string, a account) toolRun {
			return run(t, a.dir, nil, bin, "auth", "login", host, "-u", a.name, "-p", a.secret)
		},
		push: func(t *testing.T, bin string, a account, ref, file, content string) toolRun {
			layer := filepath.Join(a.dir, "layer.tar")
			writeTar(t, layer, file, content)
			return run(t, a.dir, nil, bin, "append", "--insecure", "-f", layer, "-t", ref)
		},
		digest: regexp.MustCompile(`(?m)@(sha256:[0-9a-f]{64})$`),
		pull: func(t *testing.T, bin string, a account, ref, file string) (toolRun, string) {
			out := filepath.Join(a.dir, "export.tar")
			r := run(t, a.dir, nil, bin, "export", "--insecure", ref, out)
			if r.err != nil {
				return r, ""
			}
			return r, readTar(t, out, file)
		},
		retag: func(t *testing.T, bin string, a account, ref, tag string) toolRun {
			return run(t, a.dir, nil, bin, "tag", "--insecure", ref, tag)
		},
	},
	{
		tool: "oras",
		login: func(t *testing.T, bin, host string, a account) toolRun {
			return run(t, a.dir, nil, bin, "login", "--plain-http", "--registry-config", orasConfig(a), "-u", a.name, "-p", a.secret, host)
		},
		push: func(t *testing.T, bin string, a account, ref, file, content string) toolRun {
			if err := os.WriteFile(filepath.Join(a.dir, file), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			// oras names the file by its relative path in the title annotation.
			return run(t, a.dir, nil, bin, "push", "--plain-http", "--registry-config", orasConfig(a),
				"--artifact-type", "application/vnd.airlock.test", ref, file+":text/plain")
		},
		digest: regexp.MustCompile(`(?m)^Digest: (sha256:[0-9a-f]{64})$`),
		pull: func(t *testing.T, bin string, a account, ref, file string) (toolRun, string) {
			out := t.TempDir()
			r := run(t, a.dir, nil, bin, "pull", "--plain-http", "--registry-config", orasConfig(a), "-o", out, ref)
			if r.err != nil {
				return r, ""
			}
			return r, readFile(t, filepath.Join(out, file))
		},
		retag: func(t *testing.T, bin string, a account, ref, tag string) toolRun {
			return run(t, a.dir, nil, bin, "tag", "--plain-http", "--registry-config", orasConfig(a), ref, tag)
		},
	},
	{
		tool: "regctl",
		login: func(t *testing.T, bin, host string, a account) toolRun {
			// set only records plain HTTP; the connectivity check needs the credentials of login.
			if r := run(t, a.dir, regctlEnv(a), bin, "registry", "set", "--skip-check", "--tls", "disabled", host); r.err != nil {
				return r
			}
			return run(t, a.dir, regctlEnv(a), bin, "registry", "login", host, "-u", a.name, "-p", a.secret)
		},
		push: func(t *testing.T, bin string, a account, ref, file, content string) toolRun {
			if err := os.WriteFile(filepath.Join(a.dir, file), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return run(t, a.dir, regctlEnv(a), bin, "artifact", "put", "--artifact-type", "application/vnd.airlock.test",
				"-f", file, "-m", "text/plain", "--file-title", "--format", "digest={{ .Manifest.GetDescriptor.Digest }}", ref)
		},
		digest: regexp.MustCompile(`digest=(sha256:[0-9a-f]{64})`),
		pull: func(t *testing.T, bin string, a account, ref, file string) (toolRun, string) {
			out := t.TempDir()
			r := run(t, a.dir, regctlEnv(a), bin, "artifact", "get", "-o", out, ref)
			if r.err != nil {
				return r, ""
			}
			return r, readFile(t, filepath.Join(out, file))
		},
		retag: func(t *testing.T, bin string, a account, ref, tag string) toolRun {
			repo := ref[:strings.LastIndex(ref, ":")]
			return run(t, a.dir, regctlEnv(a), bin, "image", "copy", ref, repo+":"+tag)
		},
	},
}

func orasConfig(a account) string { return filepath.Join(a.dir, "oras-auth.json") }

func regctlEnv(a account) []string {
	return []string{"REGCTL_CONFIG=" + filepath.Join(a.dir, "regctl.json")}
}

// TestPeerClients pushes with each peer tool as a pusher into a gated
// repository, checks that a puller is refused with a message that names the
// quarantine and the command that ends it, approves the digest, and pulls it
// back intact. A puller can never push, before or after approval.
func TestPeerClients(t *testing.T) {
	srv := servertest.Start(t, nil)
	admin := srv.Client(srv.AdminToken)
	for _, pc := range peerClients {
		t.Run(pc.tool, func(t *testing.T) {
			bin := tool(t, pc.tool)
			t.Parallel()
			ctx := context.Background()
			pusher := account{name: pc.tool + "-pusher", dir: t.TempDir()}
			pusher.secret = srv.Token(t, pusher.name, store.RolePusher)
			puller := account{name: pc.tool + "-puller", dir: t.TempDir()}
			puller.secret = srv.Token(t, puller.name, store.RolePuller)
			for _, a := range []account{pusher, puller} {
				if r := pc.login(t, bin, srv.Host, a); r.err != nil {
					t.Fatalf("login as %s: %v\n%s", a.name, r.err, r)
				}
			}
			repo := "gated/" + pc.tool
			ref := srv.Host + "/" + repo + ":v1"
			const file = "greeting.txt"
			content := "pushed by " + pc.tool + " at " + time.Now().Format(time.RFC3339Nano) + "\n"

			r := pc.push(t, bin, pusher, ref, file, content)
			if r.err != nil {
				t.Fatalf("push as pusher: %v\n%s", r.err, r)
			}
			m := pc.digest.FindStringSubmatch(r.output)
			if m == nil {
				t.Fatalf("push printed no digest:\n%s", r)
			}
			dgst := m[1]
			imgs, err := admin.Images(ctx, store.ImageFilter{Repository: repo})
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].Digest != dgst || imgs[0].State != store.Quarantined {
				t.Fatalf("after the push the store holds %+v in %s; want only %s, quarantined", imgs, repo, dgst)
			}

			r, _ = pc.pull(t, bin, puller, ref, file)
			if r.err == nil {
				t.Fatalf("puller pulled quarantined %s:\n%s", dgst, r)
			}
			for _, want := range []string{"quarantined", "airlock approve", dgst} {
				if !strings.Contains(r.output, want) {
					t.Errorf("refused pull does not say %q:\n%s", want, r)
				}
			}
			if !strings.Contains(strings.ToLower(r.output), "denied") {
				t.Errorf("refused pull does not say denied:\n%s", r)
			}
			denials, err := admin.Audit(ctx, store.AuditFilter{Subject: dgst, Action: "request.denied"})
			if err != nil {
				t.Fatal(err)
			}
			if !auditedBy(denials, puller.name) {
				t.Errorf("no request.denied audit entry by %s for %s: %+v", puller.name, dgst, denials)
			}

			// New content from a puller: clients probe blobs with HEAD first, and
			// a HEAD answer has no body, so some tools can only report the 403.
			r = pc.push(t, bin, puller, srv.Host+"/"+repo+":from-puller", "other.txt", "puller content\n")
			if r.err == nil {
				t.Fatalf("puller pushed:\n%s", r)
			}
			if low := strings.ToLower(r.output); !strings.Contains(low, "denied") && !strings.Contains(low, "403") {
				t.Errorf("refused push says neither denied nor 403:\n%s", r)
			}

			srv.Approve(t, dgst)

			r, got := pc.pull(t, bin, puller, ref, file)
			if r.err != nil {
				t.Fatalf("pull of approved %s as puller: %v\n%s", dgst, r.err, r)
			}
			if got != content {
				t.Errorf("pulled %s = %q, pushed %q", file, got, content)
			}

			r = pc.retag(t, bin, puller, ref, "retagged")
			if r.err == nil {
				t.Fatalf("puller tagged an approved image:\n%s", r)
			}
			if !strings.Contains(strings.ToLower(r.output), "denied") || !strings.Contains(r.output, "cannot push") {
				t.Errorf("refused tag does not say denied and cannot push:\n%s", r)
			}

			imgs, err = admin.Images(ctx, store.ImageFilter{Repository: repo})
			if err != nil {
				t.Fatal(err)
			}
			// Besides the image, only what Airlock attached to it on approval
			// (its signed attestation, a referrer of the image) may be there.
			var own []store.Image
			for _, img := range imgs {
				if img.Subject == dgst && img.History[0].Actor == "airlock" {
					continue
				}
				own = append(own, img)
			}
			if len(own) != 1 || own[0].Digest != dgst || own[0].State != store.Approved {
				t.Errorf("at the end the store holds %+v in %s; want only %s, approved", own, repo, dgst)
			}
			for _, tag := range []string{"from-puller", "retagged"} {
				if _, err := remote.Head(srv.Ref(t, repo+":"+tag), servertest.Auth("admin", srv.AdminToken)); err == nil {
					t.Errorf("tag %s exists after refused pushes by a puller", tag)
				}
			}
		})
	}
}

func auditedBy(es []store.AuditEntry, actor string) bool {
	for _, e := range es {
		if e.Actor == actor {
			return true
		}
	}
	return false
}

// writeTar writes a tar holding one regular file.
func writeTar(t *testing.T, path, name, content string) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readTar returns the content of name in the tar at path.
func readTar(t *testing.T, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s holds no %s", path, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDenialAuditedAfterHangUp: push clients probe in parallel and hang up
// on the first refusal (crane and oras did in TestPeerClients), so a denial
// must be audited even when the client is gone before the entry is written.
func TestDenialAuditedAfterHangUp(t *testing.T) {
	srv := servertest.Start(t, nil)
	puller := srv.Token(t, "puller", store.RolePuller)

	// A bearer token from the token endpoint is verified without the store and
	// a puller's upload is refused before the gate asks the store anything, so
	// the audit write is the first thing to see the cancelled context.
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/token", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("puller", puller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.Token == "" {
		t.Fatalf("token endpoint: %v %+v", err, tok)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req = httptest.NewRequestWithContext(ctx, http.MethodPost, "/v2/gated/hangup/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	rec := httptest.NewRecorder()
	srv.Server.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("upload by a puller: %d %s", rec.Code, rec.Body)
	}
	es, err := srv.Client(srv.AdminToken).Audit(context.Background(), store.AuditFilter{Action: "request.denied"})
	if err != nil {
		t.Fatal(err)
	}
	if !auditedBy(es, "puller") {
		t.Errorf("the refused upload of a client that hung up is not audited: %+v", es)
	}
}
