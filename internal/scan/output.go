package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Formats the report can be written in.
var Formats = []string{"table", "json", "sarif", "cyclonedx", "spdx"}

// Write writes the report in format ("table", "json", "sarif", "cyclonedx",
// "spdx"); color adds ANSI colours to the table.
func (r *Report) Write(w io.Writer, format string, color bool) error {
	switch format {
	case "", "table":
		return r.WriteTable(w, color)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "sarif":
		return r.WriteSARIF(w)
	case "cyclonedx":
		return r.WriteCycloneDX(w)
	case "spdx":
		return r.WriteSPDX(w)
	}
	return fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

var sevOrder = []string{"critical", "high", "medium", "low", "info", "unknown"}

var sevColor = map[string]string{"critical": "\x1b[1;31m", "high": "\x1b[31m", "medium": "\x1b[33m", "low": "\x1b[36m", "info": "\x1b[2m", "unknown": "\x1b[2m"}

// WriteTable writes the summary for people: image, counts by severity and
// type, then one line per finding.
func (r *Report) WriteTable(w io.Writer, color bool) error {
	paint := func(sev, s string) string {
		if !color {
			return s
		}
		return sevColor[sev] + s + "\x1b[0m"
	}
	fmt.Fprintf(w, "Image:    %s\n", r.Image.Reference)
	fmt.Fprintf(w, "Digest:   %s\n", r.Image.Digest)
	if r.Image.OS.PrettyName != "" {
		os := r.Image.OS.PrettyName
		if r.Image.OS.EOL != "" {
			os += " (end of life " + r.Image.OS.EOL + ")"
		}
		fmt.Fprintf(w, "OS:       %s\n", os)
	}
	if !r.Image.Created.IsZero() {
		fmt.Fprintf(w, "Created:  %s\n", r.Image.Created.Format("2006-01-02"))
	}
	eco := map[string]int{}
	for _, p := range r.Packages {
		eco[p.Type]++
	}
	var parts []string
	for _, k := range sortedKeys(eco) {
		parts = append(parts, fmt.Sprintf("%s %d", k, eco[k]))
	}
	fmt.Fprintf(w, "Packages: %d", len(r.Packages))
	if len(parts) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if r.Scanner.AdvisoryDB != "" {
		fmt.Fprintf(w, "Advisories: snapshot %s, %d fixable\n", r.Scanner.AdvisoryDB, r.Summary.FixAvailable)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note:     %s\n", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "TYPE")
	for _, s := range sevOrder {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(s))
	}
	fmt.Fprintln(tw)
	counts := map[string]map[string]int{}
	for _, f := range r.Findings {
		if f.Suppressed != "" {
			continue
		}
		if counts[f.Type] == nil {
			counts[f.Type] = map[string]int{}
		}
		counts[f.Type][f.Severity]++
	}
	for _, t := range []string{TypeVulnerability, TypeMalware, TypeSecret, TypeName, TypeAge, TypeMisconfig} {
		fmt.Fprint(tw, t)
		for _, s := range sevOrder {
			fmt.Fprintf(tw, "\t%d", counts[t][s])
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Findings) == 0 {
		_, err := fmt.Fprintln(w, "\nNo findings.")
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEVERITY\tTYPE\tID\tLOCATION\tEVIDENCE")
	for _, f := range r.Findings {
		if f.Suppressed != "" {
			continue
		}
		loc := f.Location.Path
		if f.Location.Line > 0 {
			loc += fmt.Sprintf(":%d", f.Location.Line)
		}
		if f.Location.Layer != "" {
			loc += " (layer " + short(f.Location.Layer) + ")"
		}
		ev := f.Evidence
		if ev == "" {
			ev = f.Title
		}
		if len(ev) > 100 {
			ev = ev[:97] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", paint(f.Severity, strings.ToUpper(f.Severity)), f.Type, f.ID, loc, ev)
	}
	return tw.Flush()
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SARIF 2.1.0, the subset code-scanning tools read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifTool     `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string            `json:"id"`
	ShortDescription sarifText         `json:"shortDescription"`
	Properties       map[string]string `json:"properties,omitempty"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID     string            `json:"ruleId"`
	Level      string            `json:"level"`
	Message    sarifText         `json:"message"`
	Locations  []sarifLocation   `json:"locations,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

// WriteSARIF writes the findings as a SARIF 2.1.0 log.
func (r *Report) WriteSARIF(w io.Writer) error {
	run := sarifRun{Tool: sarifTool{Driver: sarifDriver{Name: "airlock", Version: r.Scanner.Version, InformationURI: "https://github.com/airlock-dev/airlock"}}, Results: []sarifResult{}}
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if f.Suppressed != "" {
			continue
		}
		if !seen[f.ID] {
			seen[f.ID] = true
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{ID: f.ID, ShortDescription: sarifText{f.Title},
				Properties: map[string]string{"type": f.Type, "severity": f.Severity}})
		}
		level := "note"
		switch f.Severity {
		case "critical", "high":
			level = "error"
		case "medium":
			level = "warning"
		}
		msg := f.Title
		if f.Evidence != "" {
			msg += ": " + f.Evidence
		}
		res := sarifResult{RuleID: f.ID, Level: level, Message: sarifText{msg},
			Properties: map[string]string{"type": f.Type, "severity": f.Severity, "layer": f.Location.Layer, "image": r.Image.Digest}}
		if f.Location.Path != "" {
			loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: strings.TrimPrefix(f.Location.Path, "/")}}}
			if f.Location.Line > 0 {
				loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Location.Line}
			}
			res.Locations = []sarifLocation{loc}
		}
		run.Results = append(run.Results, res)
	}
	if run.Tool.Driver.Rules == nil {
		run.Tool.Driver.Rules = []sarifRule{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}
