// Command admission measures Airlock's admission webhook the way the API
// server calls it: AdmissionReview requests for a 5-container pod, over TLS on
// loopback, sent open-loop at a constant rate (500/s for 30 s by default),
// against `airlock serve` built from this checkout and, side by side, against
// a floor server that only does TLS, HTTP and the AdmissionReview JSON round
// trip. Latency counts from when a request was due, so a stall is not hidden.
//
//	go run ./bench/admission -rate 500 -duration 30s
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

type options struct {
	rate       int
	duration   time.Duration
	containers int
	out        string
	keep       bool
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-serve-floor" {
		if err := serveFloor(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "floor:", err)
			os.Exit(3)
		}
		return
	}
	var o options
	flag.IntVar(&o.rate, "rate", 500, "AdmissionReview requests per second (open loop, constant rate)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long each setting is measured")
	flag.IntVar(&o.containers, "containers", 5, "containers in the reviewed pod (each a distinct approved image)")
	flag.StringVar(&o.out, "out", "", "directory for results.json and results.md (default bench/admission/out in the repository)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the binary, data and server logs")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/admission [flags]\n\n"+
			"Starts airlock serve with its admission webhook and a floor server on 127.0.0.1 and\n"+
			"sends AdmissionReview requests to both over TLS at a constant rate.\n"+
			"Example: go run ./bench/admission -rate 500 -duration 30s\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if o.rate < 1 || o.duration <= 0 || o.containers < 1 || o.containers > 50 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	host.Run(func(ctx context.Context) error { return run(ctx, o) })
}

// repoRoot finds the checkout from the working directory (go run from anywhere inside it).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/airlock-dev/airlock\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the airlock checkout")
		}
		dir = parent
	}
}

// setting is one measured configuration.
type setting struct {
	Name   string `json:"name"`
	Server string `json:"server"`
	Path   string `json:"path"`
	// What the pod holds and what every answer must be.
	Pod    string `json:"pod"`
	Expect string `json:"expect"`
	body   []byte
	check  func(*admissionv1.AdmissionResponse) error
	url    string
	pid    int
}

// Result of one setting.
type Result struct {
	Setting    string        `json:"setting"`
	Server     string        `json:"server"`
	Pod        string        `json:"pod"`
	Expect     string        `json:"expect"`
	Sent       int           `json:"sent"`
	Errors     int           `json:"errors"`
	FirstError string        `json:"firstError,omitempty"`
	RateAsked  int           `json:"rateAsked"`
	RateSent   float64       `json:"rateSent"`
	P50        time.Duration `json:"p50"`
	P90        time.Duration `json:"p90"`
	P99        time.Duration `json:"p99"`
	P999       time.Duration `json:"p999"`
	Max        time.Duration `json:"max"`
	ServerCPU  time.Duration `json:"serverCpuPerRequest"`
	// From airlock's own latency histogram (time inside the handler, from
	// the request read to the response written): the share of requests
	// answered within 2 ms and the bucket bound holding the 99th percentile.
	HandlerWithin2ms float64 `json:"handlerWithin2ms,omitempty"`
	HandlerP99Bound  string  `json:"handlerP99Bound,omitempty"`
}

// Report is results.json.
type Report struct {
	Version  string        `json:"version"`
	Machine  host.Machine  `json:"machine"`
	Rate     int           `json:"rate"`
	Duration time.Duration `json:"duration"`
	Results  []Result      `json:"results"`
}

func run(ctx context.Context, o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "admission", "out")
	}
	tmp, removeTmp, err := host.ScratchDir("airlock-bench-admission-", o.keep)
	if err != nil {
		return err
	}
	defer removeTmp()
	rep := Report{Version: host.GitDescribe(ctx, root), Machine: host.DescribeMachine(), Rate: o.rate, Duration: o.duration}
	bin := filepath.Join(tmp, "airlock")
	host.Logf("building airlock")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/airlock")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/airlock: %w", err)
	}
	air, err := startAirlock(ctx, bin, filepath.Join(tmp, "data"))
	if err != nil {
		return err
	}
	defer air.stop()
	fix, err := prepare(ctx, air, o.containers)
	if err != nil {
		return err
	}
	floor, err := startFloor(ctx, air.data)
	if err != nil {
		return err
	}
	defer floor.stop()
	client, err := tlsClient(filepath.Join(air.data, "admission-ca.crt"))
	if err != nil {
		return err
	}
	if err := waitReady(ctx, client, air.webhook+"/readyz", air.done); err != nil {
		return fmt.Errorf("webhook: %w (log %s)", err, air.log)
	}
	if err := waitReady(ctx, client, floor.webhook+"/readyz", floor.done); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	settings := fix.settings(air, floor)
	for _, s := range settings {
		// A short warm-up: connections, TLS sessions and the index are built
		// before the clock starts, as on an API server that has been running.
		if _, err := measure(ctx, client, s, o.rate, time.Second); err != nil {
			return err
		}
		cpu0, _ := host.CPUTime(s.pid)
		h0 := handlerHistogram(air.addr, s.webhookName())
		r, err := measure(ctx, client, s, o.rate, o.duration)
		if err != nil {
			return err
		}
		cpu1, _ := host.CPUTime(s.pid)
		if s.Server == "airlock" {
			r.HandlerWithin2ms, r.HandlerP99Bound = h0.since(handlerHistogram(air.addr, s.webhookName()))
		}
		if r.Sent > 0 {
			r.ServerCPU = (cpu1 - cpu0) / time.Duration(r.Sent)
		}
		host.Logf("%-28s sent %d (%.0f/s) errors %d  p50 %v  p99 %v  max %v  server CPU/request %v",
			s.Name, r.Sent, r.RateSent, r.Errors, r.P50, r.P99, r.Max, r.ServerCPU)
		rep.Results = append(rep.Results, r)
	}
	rep.Machine.LoadEnd = host.LoadAvg()
	return write(o.out, rep)
}

// measure sends s at rate for d, each request at its due time whatever the
// previous ones are doing, and checks every answer.
func measure(ctx context.Context, client *http.Client, s setting, rate int, d time.Duration) (Result, error) {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	sent := 0
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-time.After(w):
			}
		}
		sent++
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			errs[i] = call(ctx, client, s)
			lat[i] = time.Since(due)
		}(i, due)
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := Result{Setting: s.Name, Server: s.Server, Pod: s.Pod, Expect: s.Expect, Sent: sent, RateAsked: rate, RateSent: float64(sent) / elapsed.Seconds()}
	for _, e := range errs {
		if e != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = e.Error()
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.P50, r.P90, r.P99, r.P999, r.Max = q(0.50), q(0.90), q(0.99), q(0.999), lat[len(lat)-1]
	return r, nil
}

func call(ctx context.Context, client *http.Client, s setting) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the API server's longest webhook timeout is 30 s; ours is 5 s
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(s.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &rv); err != nil || rv.Response == nil || rv.Response.UID != "bench" {
		return fmt.Errorf("not an answer to the review: %.200s", b)
	}
	return s.check(rv.Response)
}

func tlsClient(caPath string) (*http.Client, error) {
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no certificate", caPath)
	}
	// Like the API server's webhook client: HTTP/2 over TLS, connections kept.
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
	}}, nil
}

func waitReady(ctx context.Context, c *http.Client, url string, done <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("the server exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after 60 s: %v", last)
}

func write(dir string, rep Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Admission webhook: %d req/s for %v per setting\n\n", rep.Rate, rep.Duration)
	fmt.Fprintf(&md, "airlock %s · %s (%d CPUs) · %s · %s · load %s → %s\n\n", rep.Version, rep.Machine.CPU, rep.Machine.CPUs, rep.Machine.Kernel, rep.Machine.Go, rep.Machine.LoadStart, rep.Machine.LoadEnd)
	md.WriteString("| setting | server | sent (rate) | errors | p50 | p90 | p99 | p99.9 | max | server CPU / request | p99 vs floor | in handler ≤ 2 ms | in-handler p99 ≤ |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var floor time.Duration
	for _, r := range rep.Results {
		if r.Server == "floor" {
			floor = r.P99
		}
	}
	for _, r := range rep.Results {
		ratio := "—"
		if floor > 0 && r.Server != "floor" {
			ratio = fmt.Sprintf("%.2f×", float64(r.P99)/float64(floor))
		}
		within, bound := "—", "—"
		if r.HandlerP99Bound != "" {
			within, bound = fmt.Sprintf("%.2f %%", 100*r.HandlerWithin2ms), r.HandlerP99Bound
		}
		fmt.Fprintf(&md, "| %s | %s | %d (%.0f/s) | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Setting, r.Server, r.Sent, r.RateSent, r.Errors,
			ms(r.P50), ms(r.P90), ms(r.P99), ms(r.P999), ms(r.Max), us(r.ServerCPU), ratio, within, bound)
	}
	md.WriteString("\nGoal: p99 ≤ 2 ms and 0 errors for the 5-container pod.\n")
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(md.String())
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

// histogram is airlock_admission_request_duration_seconds of one webhook:
// cumulative counts by upper bound.
type histogram struct {
	bounds []string
	counts map[string]float64
}

func (s setting) webhookName() string {
	if strings.HasSuffix(s.Path, "mutate") {
		return "mutate"
	}
	return "validate"
}

// handlerHistogram scrapes airlock's /metrics (text format).
func handlerHistogram(addr, webhook string) histogram {
	h := histogram{counts: map[string]float64{}}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return h
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := "airlock_admission_request_duration_seconds_bucket{"
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, `webhook="`+webhook+`"`) {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		le := line[i+4 : i+4+j]
		var v float64
		fmt.Sscanf(strings.TrimSpace(line[strings.LastIndex(line, " "):]), "%g", &v)
		h.bounds = append(h.bounds, le)
		h.counts[le] = v
	}
	return h
}

// since is the share within 2 ms and the p99 bucket bound of the requests
// observed between h and later.
func (h histogram) since(later histogram) (float64, string) {
	total := later.counts["+Inf"] - h.counts["+Inf"]
	if total <= 0 {
		return 0, ""
	}
	within := (later.counts["0.002"] - h.counts["0.002"]) / total
	for _, le := range later.bounds {
		if (later.counts[le]-h.counts[le])/total >= 0.99 {
			if le == "+Inf" {
				return within, "> 5 s"
			}
			var s float64
			fmt.Sscanf(le, "%g", &s)
			return within, ms(time.Duration(s * float64(time.Second)))
		}
	}
	return within, ""
}
