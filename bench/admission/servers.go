package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/airlock-dev/airlock/bench/internal/host"
	"github.com/airlock-dev/airlock/internal/server"
)

// proc is a server process the bench started.
type proc struct {
	name, log     string
	addr, webhook string // registry host:port; https://host:port of the webhook
	data          string
	cmd           *exec.Cmd
	done          <-chan struct{}
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func start(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	done, err := host.StartLogged(name, cmd, logPath)
	if err != nil {
		return nil, err
	}
	return &proc{name: name, cmd: cmd, log: logPath, done: done}, nil
}

// startAirlock runs `airlock serve` with its webhook on a loopback port and
// the generated certificate (the default when none is configured).
func startAirlock(ctx context.Context, bin, data string) (*proc, error) {
	addr, err := host.FreeAddr()
	if err != nil {
		return nil, err
	}
	waddr, err := host.FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", data, "--webhook-addr", waddr, "--log-level", "error")
	cmd.Env = host.CleanEnv("AIRLOCK_")
	p, err := start("airlock", cmd, filepath.Join(filepath.Dir(data), "airlock.log"))
	if err != nil {
		return nil, err
	}
	p.addr, p.webhook, p.data = addr, "https://"+waddr, data
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := c.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("airlock exited during start; see %s", p.log)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("airlock not answering after 60 s; see %s", p.log)
		}
	}
	host.Logf("airlock serve on %s, webhook on %s (pid %d)", addr, p.webhook, cmd.Process.Pid)
	return p, nil
}

// startFloor re-executes this program as the floor server, with airlock's
// certificate so the TLS handshake costs the same.
func startFloor(ctx context.Context, data string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := host.FreeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-serve-floor", addr)
	cmd.Env = append(os.Environ(), "FLOOR_CERT="+filepath.Join(data, "admission.crt"), "FLOOR_KEY="+filepath.Join(data, "admission.key"))
	p, err := start("floor", cmd, filepath.Join(filepath.Dir(data), "floor.log"))
	if err != nil {
		return nil, err
	}
	p.webhook = "https://" + addr
	host.Logf("floor on %s (pid %d)", p.webhook, cmd.Process.Pid)
	return p, nil
}

// serveFloor is the least any webhook does: TLS, HTTP, decode the
// AdmissionReview (with the same body limit), answer allowed.
func serveFloor(addr string) error {
	cert, err := tls.LoadX509KeyPair(os.Getenv("FLOOR_CERT"), os.Getenv("FLOOR_KEY"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var rv admissionv1.AdmissionReview
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 7<<20))
		if err == nil {
			err = json.Unmarshal(b, &rv)
		}
		if err != nil || rv.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		out := admissionv1.AdmissionReview{TypeMeta: rv.TypeMeta, Response: &admissionv1.AdmissionResponse{UID: rv.Request.UID, Allowed: true}}
		b, _ = json.Marshal(out)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	hs := &http.Server{Addr: addr, Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	return hs.ListenAndServeTLS("", "")
}

// fixture is what was pushed and approved.
type fixture struct {
	host     string
	repos    []string // bench/app0 .. : approved, tag 1
	digests  []string
	pending  string // a quarantined digest in bench/pending
	nContain int
}

// prepare pushes n random images and one more, approves the n through the API
// (so each has its signed attestation) and leaves the last in quarantine.
func prepare(ctx context.Context, air *proc, n int) (*fixture, error) {
	tok, err := os.ReadFile(filepath.Join(air.data, "admin.token"))
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(string(tok))
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: token})
	client := server.NewClient("http://"+air.addr, token)
	f := &fixture{host: air.addr, nContain: n}
	push := func(repo string) (string, error) {
		img, err := random.Image(1024, 2)
		if err != nil {
			return "", err
		}
		ref, err := name.ParseReference(air.addr+"/"+repo+":1", name.Insecure)
		if err != nil {
			return "", err
		}
		if err := remote.Write(ref, img, auth, remote.WithContext(ctx)); err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
		d, err := img.Digest()
		return d.String(), err
	}
	for i := 0; i < n; i++ {
		repo := fmt.Sprintf("bench/app%d", i)
		d, err := push(repo)
		if err != nil {
			return nil, err
		}
		if _, err := client.Decide(ctx, d, "approve", server.DecisionRequest{Reason: "bench"}); err != nil {
			return nil, fmt.Errorf("approve %s: %w", d, err)
		}
		f.repos, f.digests = append(f.repos, repo), append(f.digests, d)
	}
	if f.pending, err = push("bench/pending"); err != nil {
		return nil, err
	}
	host.Logf("pushed %d approved images and one quarantined", n)
	return f, nil
}

func (f *fixture) pod(images []string) []byte {
	var spec corev1.PodSpec
	for i, im := range images {
		spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: im})
	}
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "prod", Labels: map[string]string{"app": "bench"}}, Spec: spec}
	raw, _ := json.Marshal(pod)
	rv := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "prod", Name: "bench",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	}
	b, _ := json.Marshal(rv)
	return b
}

func (f *fixture) settings(air, floor *proc) []setting {
	var pinned, tagged []string
	for i, r := range f.repos {
		pinned = append(pinned, f.host+"/"+r+":1@"+f.digests[i])
		tagged = append(tagged, f.host+"/"+r+":1")
	}
	denied := append(append([]string{}, pinned[:len(pinned)-1]...), f.host+"/bench/pending:1@"+f.pending)
	allowed := func(want bool) func(*admissionv1.AdmissionResponse) error {
		return func(r *admissionv1.AdmissionResponse) error {
			if r.Allowed != want {
				msg := ""
				if r.Result != nil {
					msg = r.Result.Message
				}
				return fmt.Errorf("allowed %v, want %v: %.200s", r.Allowed, want, msg)
			}
			return nil
		}
	}
	n := len(f.repos)
	return []setting{
		{Name: "floor (TLS + JSON only)", Server: "floor", Path: "/", Pod: fmt.Sprintf("%d pinned images", n), Expect: "allowed",
			body: f.pod(pinned), check: allowed(true), url: floor.webhook + "/", pid: floor.cmd.Process.Pid},
		{Name: "airlock validate: allowed", Server: "airlock", Path: "/admission/validate", Pod: fmt.Sprintf("%d approved pinned images", n), Expect: "allowed",
			body: f.pod(pinned), check: allowed(true), url: air.webhook + "/admission/validate", pid: air.cmd.Process.Pid},
		{Name: "airlock validate: denied", Server: "airlock", Path: "/admission/validate", Pod: fmt.Sprintf("%d pinned, 1 quarantined", n), Expect: "denied",
			body: f.pod(denied), check: allowed(false), url: air.webhook + "/admission/validate", pid: air.cmd.Process.Pid},
		{Name: "airlock mutate: pin tags", Server: "airlock", Path: "/admission/mutate", Pod: fmt.Sprintf("%d approved tags", n), Expect: fmt.Sprintf("%d patches", n),
			body: f.pod(tagged), url: air.webhook + "/admission/mutate", pid: air.cmd.Process.Pid,
			check: func(r *admissionv1.AdmissionResponse) error {
				var ops []map[string]string
				if err := json.Unmarshal(r.Patch, &ops); err != nil || len(ops) != n {
					return fmt.Errorf("patch %.200s, want %d operations", r.Patch, n)
				}
				for i, op := range ops {
					if op["value"] != pinned[i] {
						return fmt.Errorf("patch %d pins %s, want %s", i, op["value"], pinned[i])
					}
				}
				return nil
			}},
	}
}
