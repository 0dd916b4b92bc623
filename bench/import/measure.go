package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// bench copies the image with every tool. Within a repetition the tools take
// turns in a rotating order, so drift of the machine (page cache, frequency,
// background writeback) spreads over all of them.
type bench struct {
	o       options
	tmp     string
	tools   *tools
	airlock string // binary built from the repository
	up      *server
	img     *image
	res     *results
	runs    int // destinations started so far, for their directory names
}

// copier is one row of the table: how to start a fresh destination, the
// command that copies the image into it, and how to check the copy.
type copier struct {
	key, label string
	peer       bool
	// start runs a fresh destination in dir and returns it with the
	// command line and environment of the copy.
	start  func(ctx context.Context, dir string) (*server, []string, []string, error)
	verify func(ctx context.Context, dest *server, stdout []byte) error
}

// sample is one timed copy.
type sample struct {
	Seconds float64 `json:"seconds"`
	// CPU seconds of the copying command, the destination server and the
	// upstream registry during the copy.
	ClientCPU   float64 `json:"clientCpu"`
	DestCPU     float64 `json:"destinationCpu"`
	UpstreamCPU float64 `json:"upstreamCpu"`
}

func (b *bench) source() string { return b.up.host + "/" + imageRepo + ":" + imageTag }

func (b *bench) copiers() []*copier {
	cs := []*copier{
		{
			key: "airlock", label: "airlock import (into airlock serve)",
			start: func(ctx context.Context, dir string) (*server, []string, []string, error) {
				dest, err := startAirlock(ctx, b.airlock, dir)
				if err != nil {
					return nil, nil, nil, err
				}
				token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
				if err != nil {
					dest.stop()
					return nil, nil, nil, fmt.Errorf("airlock admin token: %w", err)
				}
				env := append(host.CleanEnv("AIRLOCK_", "HOME="), "HOME="+dir,
					"AIRLOCK_SERVER=http://"+dest.host, "AIRLOCK_TOKEN="+strings.TrimSpace(string(token)))
				return dest, []string{b.airlock, "import", b.source(), "--insecure", "-o", "json"}, env, nil
			},
			verify: func(_ context.Context, _ *server, stdout []byte) error {
				var ev struct {
					Result *struct {
						Digest string `json:"digest"`
						Size   int64  `json:"size"`
					} `json:"result"`
				}
				if err := json.Unmarshal(stdout, &ev); err != nil || ev.Result == nil {
					return fmt.Errorf("airlock import printed no result (%v): %.300s", err, stdout)
				}
				if ev.Result.Digest != b.img.digest || ev.Result.Size != b.img.bytes {
					return fmt.Errorf("airlock import stored %s (%d bytes copied), want %s (%d bytes)", ev.Result.Digest, ev.Result.Size, b.img.digest, b.img.bytes)
				}
				return nil
			},
		},
		{
			key: "crane", label: "crane copy (into registry)", peer: true,
			start: func(ctx context.Context, dir string) (*server, []string, []string, error) {
				dest, err := startDistribution(ctx, b.tools.registry, dir, "destination")
				if err != nil {
					return nil, nil, nil, err
				}
				argv := []string{b.tools.crane, "copy", "--insecure", b.source(), dest.host + "/" + imageRepo + ":" + imageTag}
				return dest, argv, append(host.CleanEnv("HOME="), "HOME="+dir), nil
			},
			verify: b.verifyManifest,
		},
	}
	if b.tools.skopeo != "" {
		cs = append(cs, &copier{
			key: "skopeo", label: "skopeo copy (into registry)", peer: true,
			start: func(ctx context.Context, dir string) (*server, []string, []string, error) {
				dest, err := startDistribution(ctx, b.tools.registry, dir, "destination")
				if err != nil {
					return nil, nil, nil, err
				}
				argv := []string{b.tools.skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
					"docker://" + b.source(), "docker://" + dest.host + "/" + imageRepo + ":" + imageTag}
				return dest, argv, append(host.CleanEnv("HOME="), "HOME="+dir), nil
			},
			verify: b.verifyManifest,
		})
	}
	return cs
}

// verifyManifest checks that the destination serves the image's manifest under its tag.
func (b *bench) verifyManifest(ctx context.Context, dest *server, _ []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+dest.host+"/v2/"+imageRepo+"/manifests/"+imageTag, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); resp.StatusCode != http.StatusOK || got != b.img.digest {
		return fmt.Errorf("destination answers %s with digest %q for %s:%s, want %s", resp.Status, got, imageRepo, imageTag, b.img.digest)
	}
	return nil
}

func (b *bench) measure(ctx context.Context) error {
	cs := b.copiers()
	for _, c := range cs {
		b.res.Tools = append(b.res.Tools, &toolResult{Key: c.key, Label: c.label, Peer: c.peer})
	}
	if b.tools.skopeoMissing != "" {
		b.res.Tools = append(b.res.Tools, &toolResult{Key: "skopeo", Label: "skopeo copy (into registry)", Peer: true, Missing: b.tools.skopeoMissing})
	}
	for i := 0; i < b.o.warmup; i++ {
		for _, c := range cs {
			s, err := b.copyOnce(ctx, c, nil)
			if err != nil {
				return err
			}
			host.Logf("warm-up %d/%d: %s %.2fs", i+1, b.o.warmup, c.key, s.Seconds)
		}
	}
	for rep := 0; rep < b.o.reps; rep++ {
		for i := range cs {
			c := cs[(rep+i)%len(cs)]
			s, err := b.copyOnce(ctx, c, nil)
			if err != nil {
				return err
			}
			b.res.tool(c.key).Samples = append(b.res.tool(c.key).Samples, s)
			host.Logf("repetition %d/%d: %s %.2fs (CPU s: client %.2f, destination %.2f, upstream %.2f)",
				rep+1, b.o.reps, c.key, s.Seconds, s.ClientCPU, s.DestCPU, s.UpstreamCPU)
		}
	}
	return nil
}

// copyOnce starts a fresh destination, times one copy into it and checks
// it; during runs hook is called with the destination's pid just before the
// copy and its result after (for perf).
func (b *bench) copyOnce(ctx context.Context, c *copier, hook func(pid int) func()) (sample, error) {
	var s sample
	b.runs++
	dir := filepath.Join(b.tmp, fmt.Sprintf("%02d-%s", b.runs, c.key))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s, err
	}
	dest, argv, env, err := c.start(ctx, dir)
	if err != nil {
		return s, err
	}
	defer func() {
		dest.stop()
		if !b.o.keep {
			_ = os.RemoveAll(dir)
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	// Start from clean page cache: earlier copies' writes are not this one's cost.
	syscall.Sync()
	var after func()
	if hook != nil {
		after = hook(dest.pid())
	}
	up0, err1 := host.CPUTime(b.up.pid())
	dest0, err2 := host.CPUTime(dest.pid())
	start := time.Now()
	err = cmd.Run()
	s.Seconds = time.Since(start).Seconds()
	up1, err3 := host.CPUTime(b.up.pid())
	dest1, err4 := host.CPUTime(dest.pid())
	if after != nil {
		after()
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w\n%s\n%s (destination log: %s)", strings.Join(argv, " "), err, tail(stdout.Bytes()), tail(stderr.Bytes()), dest.logTail())
	}
	if e := firstErr(err1, err2, err3, err4); e != nil {
		return s, e
	}
	s.ClientCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	s.DestCPU = (dest1 - dest0).Seconds()
	s.UpstreamCPU = (up1 - up0).Seconds()
	if err := c.verify(ctx, dest, stdout.Bytes()); err != nil {
		return s, fmt.Errorf("%s: %w", c.key, err)
	}
	return s, nil
}

// profile copies once more with each tool under `perf record -a` (all CPUs:
// the command, the destination and the upstream are all part of a copy) and
// writes a per-process and a per-symbol summary into the out directory.
func (b *bench) profile(ctx context.Context) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("-perf needs perf on PATH: %w", err)
	}
	for _, c := range b.copiers() {
		data := filepath.Join(b.o.out, "perf-"+c.key+".data")
		var recErr error
		_, err := b.copyOnce(ctx, c, func(int) func() {
			rec := exec.Command(perf, "record", "-q", "-a", "-g", "-F", "999", "-o", data)
			rec.Stderr = os.Stderr
			if recErr = rec.Start(); recErr != nil {
				return nil
			}
			time.Sleep(500 * time.Millisecond) // let perf attach
			return func() {
				_ = rec.Process.Signal(os.Interrupt)
				_ = rec.Wait()
			}
		})
		if err != nil {
			return err
		}
		if recErr != nil {
			return fmt.Errorf("perf record: %w", recErr)
		}
		// Report now, while the binaries still exist.
		var txt bytes.Buffer
		// Every process first (other work on the machine shows there), then
		// the symbols of the processes of the copy.
		for _, args := range [][]string{
			{"--sort", "comm"},
			{"--sort", "comm,dso,symbol", "--comms", "airlock,registry,crane,skopeo"},
		} {
			args = append([]string{"report", "-i", data, "--stdio", "--no-children", "-g", "none", "--percent-limit", "0.5"}, args...)
			rep := exec.CommandContext(ctx, perf, args...)
			out, err := rep.Output()
			if err != nil {
				return fmt.Errorf("perf report: %w", err)
			}
			txt.Write(out)
		}
		path := filepath.Join(b.o.out, "perf-"+c.key+".txt")
		if err := os.WriteFile(path, txt.Bytes(), 0o644); err != nil {
			return err
		}
		host.Logf("%s: perf profile in %s (summary %s)", c.key, data, path)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strconv.Quote(string(bytes.TrimSpace(b)))
}
