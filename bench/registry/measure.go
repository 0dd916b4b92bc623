package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// bench runs every measurement on every target. Within a repetition the
// targets take turns in a rotating order, so drift of the machine (page
// cache, frequency, background writeback) spreads over all columns.
type bench struct {
	o       options
	targets []*target
	img     *image
	res     *results
}

func (b *bench) order(rep int) []*target {
	n := len(b.targets)
	out := make([]*target, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, b.targets[(rep+i)%n])
	}
	return out
}

func (b *bench) measure(ctx context.Context) error {
	for _, step := range []func(context.Context) error{b.pulls, b.manifestGets, b.pushes} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// pulls times reading the blob; a repetition reads it as often as it takes to
// move at least 1 GiB, so that one scheduling hiccup does not make the number.
func (b *bench) pulls(ctx context.Context) error {
	times := max(1, (1024+b.o.blobMiB-1)/b.o.blobMiB)
	name := "blob pull"
	if times > 1 {
		name = fmt.Sprintf("blob pull (%d× per repetition)", times)
	}
	m := b.res.metric(name, "MB/s", true, true)
	buf := make([]byte, 1<<20)
	for rep := 0; rep < b.o.reps; rep++ {
		for _, t := range b.order(rep) {
			if err := t.fresh(ctx); err != nil {
				return err
			}
			var total int64
			start := time.Now()
			for i := 0; i < times; i++ {
				n, err := t.pullBlob(ctx, t.pull, b.img.layerDigest, buf, false)
				if err != nil {
					return err
				}
				total += n
			}
			m.add(t.key, float64(total)/1e6/time.Since(start).Seconds())
		}
		host.Logf("blob pull: repetition %d/%d done", rep+1, b.o.reps)
	}
	return nil
}

// getCase is one setting of the manifest GET measurement.
type getCase struct {
	byDigest bool
	clients  int
	basic    bool // Basic auth on every request instead of a bearer token
}

func (c getCase) String() string {
	s := "manifest GET by tag"
	if c.byDigest {
		s = "manifest GET by digest"
	}
	s += fmt.Sprintf(", %d client", c.clients)
	if c.clients > 1 {
		s += "s"
	}
	if c.basic {
		s += ", Basic auth"
	}
	return s
}

func (b *bench) manifestGets(ctx context.Context) error {
	cases := []getCase{
		{clients: 1}, {clients: 16},
		{byDigest: true, clients: 1}, {byDigest: true, clients: 16},
		{clients: 1, basic: true}, {clients: 16, basic: true},
	}
	for _, c := range cases {
		p50 := b.res.metric(c.String()+", p50", "ms", false, false)
		p99 := b.res.metric(c.String()+", p99", "ms", false, true)
		var rate, cpu *metric
		if c.clients > 1 {
			rate = b.res.metric(c.String()+", throughput", "req/s", true, true)
			if _, err := host.CPUTime(os.Getpid()); err == nil {
				cpu = b.res.metric(c.String()+", server CPU per request", "µs", false, false)
			}
		}
		ref := pullTag
		if c.byDigest {
			ref = b.img.manifestDigest
		}
		for rep := 0; rep < b.o.reps; rep++ {
			for _, t := range b.order(rep) {
				if err := t.fresh(ctx); err != nil {
					return err
				}
				cred := t.pull
				if c.basic && t.basic != nil {
					cred = t.basic
				}
				// Open the clients' connections before timing.
				if _, _, err := manifestLatency(ctx, t, cred, ref, c.clients, 4*c.clients); err != nil {
					return err
				}
				cpu0, _ := host.CPUTime(t.srv.pid())
				lat, wall, err := manifestLatency(ctx, t, cred, ref, c.clients, b.o.requests)
				if err != nil {
					return err
				}
				if cpu != nil {
					cpu1, err := host.CPUTime(t.srv.pid())
					if err != nil {
						return err
					}
					cpu.add(t.key, float64((cpu1-cpu0).Microseconds())/float64(len(lat)))
				}
				p50.add(t.key, ms(percentile(lat, 0.50)))
				p99.add(t.key, ms(percentile(lat, 0.99)))
				if rate != nil {
					rate.add(t.key, float64(len(lat))/wall.Seconds())
				}
			}
		}
		host.Logf("%s: %d repetitions done", c, b.o.reps)
	}
	return nil
}

// manifestLatency sends n GETs of ref from clients concurrent keep-alive
// clients and returns each request's latency and the wall time of all.
func manifestLatency(ctx context.Context, t *target, cred *credential, ref string, clients, n int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				s := time.Now()
				_, err := t.getManifest(ctx, cred, ref)
				lat[i] = time.Since(s)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("%s: %w", t.label, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func (b *bench) pushes(ctx context.Context) error {
	blob := b.res.metric("blob push (POST + PUT)", "MB/s", true, true)
	p50 := b.res.metric("manifest PUT, 1 client, p50", "ms", false, false)
	p99 := b.res.metric("manifest PUT, 1 client, p99", "ms", false, true)
	puts := max(20, b.o.requests/10)
	data := bytes.Clone(b.img.layer) // each push is new content, so nothing is deduplicated
	size := int64(len(data))
	n := uint64(1)
	for rep := 0; rep < b.o.reps; rep++ {
		for _, t := range b.order(rep) {
			if err := t.fresh(ctx); err != nil {
				return err
			}
			dgst := stamp(data, n)
			n++
			syscall.Sync() // start from clean page cache: earlier writes are not this push's cost
			start := time.Now()
			if err := t.pushBlob(ctx, dgst, data); err != nil {
				return err
			}
			blob.add(t.key, float64(size)/1e6/time.Since(start).Seconds())

			lat := make([]time.Duration, puts)
			for i := range lat {
				body := b.img.manifestFor(dgst, size, map[string]string{"bench.n": strconv.Itoa(i)})
				s := time.Now()
				if err := t.putManifest(ctx, fmt.Sprintf("r%d-%d", rep, i), body); err != nil {
					return err
				}
				lat[i] = time.Since(s)
			}
			p50.add(t.key, ms(percentile(lat, 0.50)))
			p99.add(t.key, ms(percentile(lat, 0.99)))
		}
		host.Logf("push: repetition %d/%d done", rep+1, b.o.reps)
	}
	return nil
}

// profile records each server with perf while 16 clients GET the manifest by
// tag, outside the measurements so that they are not disturbed.
func (b *bench) profile(ctx context.Context) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("-perf needs perf on PATH: %w", err)
	}
	for _, t := range b.targets {
		if err := t.fresh(ctx); err != nil {
			return err
		}
		data := filepath.Join(b.o.out, "perf-"+t.key+".data")
		rec := exec.Command(perf, "record", "-q", "-g", "-F", "999", "-p", strconv.Itoa(t.srv.pid()), "-o", data)
		rec.Stderr = os.Stderr
		if err := rec.Start(); err != nil {
			return fmt.Errorf("perf record: %w", err)
		}
		time.Sleep(500 * time.Millisecond) // let perf attach
		_, _, err := manifestLatency(ctx, t, t.pull, pullTag, 16, 4*b.o.requests)
		_ = rec.Process.Signal(os.Interrupt)
		_ = rec.Wait()
		if err != nil {
			return err
		}
		// Report now, while the binaries still exist.
		txt := filepath.Join(b.o.out, "perf-"+t.key+".txt")
		rep := exec.Command(perf, "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "symbol", "--percent-limit", "0.5")
		out, err := rep.Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		if err := os.WriteFile(txt, out, 0o644); err != nil {
			return err
		}
		host.Logf("%s: perf profile in %s (summary %s)", t.label, data, txt)
	}
	return nil
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
