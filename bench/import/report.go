package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// Goal of the issue: airlock's import takes at most 1.1× the time of the
// faster peer.
const maxRatio = 1.1

type results struct {
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Command  string            `json:"command"`
	Machine  host.Machine      `json:"machine"`
	Options  map[string]any    `json:"options"`
	Versions map[string]string `json:"versions"`
	Image    imageSummary      `json:"image"`
	Tools    []*toolResult     `json:"tools"`
	// Goal is the largest airlock/faster-peer ratio of median times the issue accepts.
	Goal       float64 `json:"goalRatio"`
	FasterPeer string  `json:"fasterPeer"`
	Ratio      float64 `json:"ratioAirlockToFasterPeer"`
	Met        bool    `json:"goalMet"`
}

// toolResult is one row: the timed copies of one tool.
type toolResult struct {
	Key     string   `json:"key"`
	Label   string   `json:"label"`
	Peer    bool     `json:"peer"`
	Missing string   `json:"missing,omitempty"` // why the tool did not run
	Samples []sample `json:"samples,omitempty"`
	Median  float64  `json:"medianSeconds,omitempty"`
	Min     float64  `json:"minSeconds,omitempty"`
	Max     float64  `json:"maxSeconds,omitempty"`
	MiBps   float64  `json:"mibPerSecond,omitempty"` // image size / median
	// Ratio is median / the faster peer's median.
	Ratio float64 `json:"ratioToFasterPeer,omitempty"`
	// Medians of the CPU seconds of each process during a copy.
	ClientCPU   float64 `json:"medianClientCpu,omitempty"`
	DestCPU     float64 `json:"medianDestinationCpu,omitempty"`
	UpstreamCPU float64 `json:"medianUpstreamCpu,omitempty"`
}

func (r *results) tool(key string) *toolResult {
	for _, t := range r.Tools {
		if t.Key == key && t.Missing == "" {
			return t
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *results) finish() {
	var faster *toolResult
	for _, t := range r.Tools {
		if t.Missing != "" || len(t.Samples) == 0 {
			continue
		}
		var secs, client, dest, up []float64
		for _, s := range t.Samples {
			secs = append(secs, s.Seconds)
			client = append(client, s.ClientCPU)
			dest = append(dest, s.DestCPU)
			up = append(up, s.UpstreamCPU)
		}
		t.Median, t.ClientCPU, t.DestCPU, t.UpstreamCPU = median(secs), median(client), median(dest), median(up)
		sort.Float64s(secs)
		t.Min, t.Max = secs[0], secs[len(secs)-1]
		t.MiBps = r.Image.MiB / t.Median
		if t.Peer && (faster == nil || t.Median < faster.Median) {
			faster = t
		}
	}
	if faster == nil {
		return
	}
	r.FasterPeer = faster.Key
	for _, t := range r.Tools {
		if t.Median > 0 {
			t.Ratio = t.Median / faster.Median
		}
	}
	if a := r.tool("airlock"); a != nil {
		r.Ratio = a.Ratio
		r.Met = a.Ratio <= r.Goal
	}
}

// num prints about three significant digits.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s on %s, %d CPUs, Linux %s, %s; airlock %s; distribution %s; crane %s; skopeo %s.\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go,
		r.Versions["airlock"], r.Versions["distribution"], r.Versions["crane"], orNone(r.Versions["skopeo"]))
	fmt.Fprintf(&b, "Command: `%s` (%v timed copies per tool after %v warm-up; image %s, %.1f MiB in %d layers; %.0f s in all; load average %s at the start, %s at the end).\n\n",
		r.Command, r.Options["reps"], r.Options["warmup"], r.Image.Digest, r.Image.MiB, r.Image.Layers, r.Seconds, r.Machine.LoadStart, r.Machine.LoadEnd)
	b.WriteString("| tool | median s | min s | max s | MiB/s | ratio to the faster peer |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, t := range r.Tools {
		if t.Missing != "" {
			fmt.Fprintf(&b, "| %s | not run: %s | | | | |\n", t.Label, t.Missing)
			continue
		}
		ratio := fmt.Sprintf("%.2f×", t.Ratio)
		if t.Key == r.FasterPeer {
			ratio += " (faster peer)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", t.Label, num(t.Median), num(t.Min), num(t.Max), num(t.MiBps), ratio)
	}
	verdict := "met"
	if !r.Met {
		verdict = "MISSED"
	}
	fmt.Fprintf(&b, "\nGoal: airlock ≤%.1f× the faster peer (%s): %.2f×, %s.\n", r.Goal, r.FasterPeer, r.Ratio, verdict)
	for _, t := range r.Tools {
		if t.Peer && t.Missing != "" {
			fmt.Fprintf(&b, "**%s was not run** (%s): the faster peer is the faster of the others only.\n", t.Key, t.Missing)
		}
	}
	b.WriteString("\nCPU seconds during one copy (medians): the copying command, the destination server, the upstream registry.\n\n")
	b.WriteString("| tool | command | destination | upstream | all | all / wall time |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, t := range r.Tools {
		if t.Missing != "" {
			continue
		}
		all := t.ClientCPU + t.DestCPU + t.UpstreamCPU
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f |\n", t.Label, num(t.ClientCPU), num(t.DestCPU), num(t.UpstreamCPU), num(all), all/t.Median)
	}
	b.WriteString("\nEach copy goes from the same upstream distribution registry (filesystem storage, 127.0.0.1) into a destination " +
		"started fresh for it: `airlock serve` with a new data directory for airlock, distribution's `registry` with new " +
		"filesystem storage for crane and skopeo. Time is wall clock from starting the command until it exits; airlock's " +
		"includes the import job's queueing, digest verification and recording. The page cache is synced before every copy.\n")
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "not run"
	}
	return s
}

func (r *results) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644)
}
