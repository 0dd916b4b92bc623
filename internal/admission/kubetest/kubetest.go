// Package kubetest runs a real Kubernetes control plane — etcd and
// kube-apiserver on 127.0.0.1, started through controller-runtime's envtest —
// for the admission tests, so that webhooks and ValidatingAdmissionPolicies
// are exercised by the API server that calls them in a cluster, not by a
// hand-made AdmissionReview.
//
// The binaries are built from the Go module proxy by .ci/kube.sh and found
// through AIRLOCK_KUBE_ASSETS or the cache path the script uses. Without them
// a test is skipped, except under CI=true where that is a failure.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Versions of the control plane .ci/kube.sh builds; the cache directory is
// keyed by both, so the script and the harness must agree.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.7.0"
)

// AssetsEnv names the directory holding kube-apiserver and etcd.
const AssetsEnv = "AIRLOCK_KUBE_ASSETS"

// Assets returns the directory holding kube-apiserver and etcd: AIRLOCK_KUBE_ASSETS,
// else AIRLOCK_TEST_TOOLS (where .ci/tools.sh links them), else the cache
// directory .ci/kube.sh fills. When neither has both binaries the
// test is skipped, or fails when CI=true, since CI installs them.
func Assets(t testing.TB) string {
	t.Helper()
	dir, err := findAssets(os.Getenv(AssetsEnv), os.Getenv("AIRLOCK_TEST_TOOLS"), cacheDir())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: .ci/tools.sh should have run .ci/kube.sh)", err)
		}
		t.Skipf("%v", err)
	}
	return dir
}

// cacheDir is where .ci/kube.sh puts the binaries when AIRLOCK_KUBE_ASSETS is unset.
func cacheDir() string {
	base := os.Getenv("AIRLOCK_TOOLS_CACHE")
	if base == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(c, "airlock-tools")
	}
	return filepath.Join(base, "kube-"+KubeVersion+"-etcd-"+EtcdVersion)
}

func findAssets(candidates ...string) (string, error) {
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if isExecutable(filepath.Join(dir, "kube-apiserver")) && isExecutable(filepath.Join(dir, "etcd")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no kube-apiserver and etcd in $%s, $AIRLOCK_TEST_TOOLS or %s; run .ci/kube.sh (it builds them once, ~11 CPU-minutes) and export %s=$(.ci/kube.sh)",
		AssetsEnv, cacheDir(), AssetsEnv)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// ControlPlane is etcd and kube-apiserver running for one test.
type ControlPlane struct {
	// Config authenticates as a member of system:masters.
	Config *rest.Config
	Client kubernetes.Interface

	env *envtest.Environment
	out *syncBuffer
}

var quietController sync.Once

// Start runs etcd and kube-apiserver on free loopback ports until the test
// ends. The API server's log is shown when the test fails.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	assets := Assets(t)
	// envtest logs through controller-runtime's logger and complains, with a
	// stack trace, when none was set; its messages add nothing to the server logs.
	quietController.Do(func() { ctrllog.SetLogger(logr.Discard()) })

	out := &syncBuffer{}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		// Never a cluster from the developer's kubeconfig (USE_EXISTING_CLUSTER).
		UseExistingCluster: ptr.To(false),
		// Bounds on a hung start or stop, not on how fast a start must be: a
		// loaded 2-core machine takes ~10 s where a laptop takes 2.
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// KUBEBUILDER_ASSETS would override BinaryAssetsDirectory; pin the paths.
	api := env.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(assets, "kube-apiserver")
	api.Out, api.Err = out, out
	// Loopback only, the address the API server publishes for itself too. It
	// refuses a loopback address for the endpoints of the "kubernetes"
	// Service, which nothing here reads: no endpoint reconciler.
	api.Configure().
		Set("advertise-address", "127.0.0.1").
		Set("endpoint-reconciler-type", "none")
	env.ControlPlane.Etcd = &envtest.Etcd{Path: filepath.Join(assets, "etcd"), Out: out, Err: out}

	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		t.Fatalf("start kube-apiserver %s and etcd %s from %s: %v\n%s", KubeVersion, EtcdVersion, assets, err, out.String())
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = env.Stop()
		t.Fatal(err)
	}
	cp := &ControlPlane{Config: cfg, Client: cs, env: env, out: out}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the control plane: %v", err)
		}
		if t.Failed() {
			t.Logf("kube-apiserver and etcd log (last 64 KiB):\n%s", cp.Log(64<<10))
		}
	})
	return cp
}

// Log returns the last max bytes the API server and etcd wrote.
func (cp *ControlPlane) Log(max int) string {
	s := cp.out.String()
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// Eventually calls check until it returns nil and fails the test with the
// last error if the test's deadline (go test -timeout) comes first. It is for
// state the API server reaches asynchronously — a new webhook configuration
// or admission policy becomes active only once its informer has seen it —
// and takes the place of a sleep; it sets no time limit of its own.
func Eventually(t testing.TB, what string, check func(ctx context.Context) error) {
	t.Helper()
	ctx := context.Background()
	if tt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := tt.Deadline(); ok {
			// Leave time for the cleanups and the failure message.
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
			defer cancel()
		}
	}
	wait := 10 * time.Millisecond
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still not so when the test's deadline came: %v", what, last)
		case <-time.After(wait):
		}
		if wait < 500*time.Millisecond {
			wait *= 2
		}
	}
}

// ErrNotYet is what a check passed to Eventually returns while waiting.
var ErrNotYet = errors.New("not yet")

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The API server logs every request at its default level; keep the tail.
	if s.b.Len() > 8<<20 {
		rest := s.b.Bytes()[s.b.Len()-(1<<20):]
		s.b = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
