package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// Goals of the issue: airlock with the gate on at least as fast as
// distribution, and the gate itself costing at most 5%.
const maxGateOverhead = 0.05

// Columns of the table, in order.
var columns = []string{"distribution", "airlock-off", "airlock-on"}

type results struct {
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Command  string            `json:"command"`
	Machine  host.Machine      `json:"machine"`
	Options  map[string]any    `json:"options"`
	Versions map[string]string `json:"versions"`
	Targets  map[string]string `json:"targets"`
	Metrics  []*metric         `json:"metrics"`
}

// metric is one row: a quantity measured on every target, once per repetition.
type metric struct {
	Name           string             `json:"name"`
	Unit           string             `json:"unit"`
	HigherIsBetter bool               `json:"higherIsBetter"`
	RatioGoal      bool               `json:"ratioGoal"` // the issue sets a goal for gate-on/distribution
	Values         map[string]*series `json:"values"`
	// Ratio is gate-on/distribution of the medians (throughput: ≥1 is as fast;
	// latency: ≤1 is as fast).
	Ratio float64 `json:"ratioGateOnToDistribution"`
	// GateOverhead is how much more time the gate costs: cost(on)/cost(off)-1,
	// where cost is latency or 1/throughput.
	GateOverhead float64  `json:"gateOverhead"`
	Missed       []string `json:"missedGoals"`
}

type series struct {
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
}

func (r *results) metric(name, unit string, higher, ratioGoal bool) *metric {
	m := &metric{Name: name, Unit: unit, HigherIsBetter: higher, RatioGoal: ratioGoal, Values: map[string]*series{}}
	r.Metrics = append(r.Metrics, m)
	return m
}

func (m *metric) add(key string, v float64) {
	s := m.Values[key]
	if s == nil {
		s = &series{}
		m.Values[key] = s
	}
	s.Samples = append(s.Samples, v)
}

func (r *results) finish() {
	for _, m := range r.Metrics {
		for _, s := range m.Values {
			v := append([]float64(nil), s.Samples...)
			sort.Float64s(v)
			s.Min, s.Max = v[0], v[len(v)-1]
			if n := len(v); n%2 == 1 {
				s.Median = v[n/2]
			} else {
				s.Median = (v[n/2-1] + v[n/2]) / 2
			}
		}
		dist, off, on := m.Values["distribution"].Median, m.Values["airlock-off"].Median, m.Values["airlock-on"].Median
		m.Ratio = on / dist
		if m.HigherIsBetter {
			m.GateOverhead = off/on - 1
		} else {
			m.GateOverhead = on/off - 1
		}
		m.Missed = nil
		if m.RatioGoal && ((m.HigherIsBetter && m.Ratio < 1) || (!m.HigherIsBetter && m.Ratio > 1)) {
			m.Missed = append(m.Missed, "ratio")
		}
		if m.GateOverhead > maxGateOverhead {
			m.Missed = append(m.Missed, "overhead")
		}
	}
}

// num prints about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func (s *series) cell() string {
	return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s on %s, %d CPUs, Linux %s, %s; distribution %s; airlock %s.\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go,
		r.Versions["distribution"], r.Versions["airlock"])
	fmt.Fprintf(&b, "Command: `%s` (%d repetitions; blob %v MiB; %v manifest GETs per setting and repetition; %.0f s in all; load average %s at the start, %s at the end).\n\n",
		r.Command, r.Options["reps"], r.Options["blobMiB"], r.Options["requests"], r.Seconds, r.Machine.LoadStart, r.Machine.LoadEnd)
	b.WriteString("| metric | distribution | airlock (gate off) | airlock (gate on) | ratio airlock-gate-on/distribution | gate overhead (gate on vs off) | goals |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, m := range r.Metrics {
		dir := "higher is better"
		if !m.HigherIsBetter {
			dir = "lower is better"
		}
		fmt.Fprintf(&b, "| %s (%s, %s) ", m.Name, m.Unit, dir)
		for _, c := range columns {
			fmt.Fprintf(&b, "| %s ", m.Values[c].cell())
		}
		goal := "ok"
		if len(m.Missed) > 0 {
			goal = "MISSED: " + strings.Join(m.Missed, ", ")
		}
		fmt.Fprintf(&b, "| %.2f× | %+.1f%% | %s |\n", m.Ratio, 100*m.GateOverhead, goal)
	}
	b.WriteString("\nCells: median (min–max) over repetitions; latency rows take the percentile within each repetition first. " +
		"Goals: ratio ≥1.0× for throughput and ≤1.0× for p99 rows, gate overhead ≤5% for every row. " +
		"distribution runs without authentication; airlock's clients send a bearer token from /token " +
		"(in the Basic auth rows, the token as Basic password on every request; distribution's column is then again unauthenticated).\n")
	return b.String()
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
