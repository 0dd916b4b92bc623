package pin

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteDiff writes the unified diff of every change.
func (r *Report) WriteDiff(w io.Writer) error {
	for _, c := range r.Changes {
		if _, err := io.WriteString(w, UnifiedDiff(c.Path, c.Old, c.New)); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes the findings for people: one line per reference that
// needs attention (all of them with verbose), then a summary.
func (r *Report) WriteText(w io.Writer, verbose bool) {
	for _, e := range r.Errors {
		fmt.Fprintf(w, "%s: error: %s\n", locate(e.Path, e.Line, 0), e.Message)
	}
	for _, f := range r.Findings {
		if !verbose && (f.Status == StatusPinned || f.Status == StatusIgnored) {
			continue
		}
		loc := locate(f.Path, f.Line, f.Col)
		switch f.Status {
		case StatusUnpinned:
			verb := "not pinned"
			if r.Mode == ModePreview || r.Mode == ModeDiff {
				verb = "would pin"
			}
			fmt.Fprintf(w, "%s: %s %s → %s\n", loc, verb, f.Reference, f.Suggestion)
		case StatusRewritten:
			fmt.Fprintf(w, "%s: pinned %s → %s\n", loc, f.Reference, f.Suggestion)
		case StatusManual:
			fmt.Fprintf(w, "%s: not pinned %s: %s; write %s\n", loc, f.Reference, f.Message, f.Suggestion)
		case StatusUnapproved:
			fmt.Fprintf(w, "%s: not approved %s: %s\n", loc, f.Reference, f.Message)
		case StatusScript:
			fmt.Fprintf(w, "%s: remote script %q: %s\n", loc, f.Reference, f.Message)
		case StatusNote:
			fmt.Fprintf(w, "%s: note: %s\n", loc, f.Message)
		default:
			fmt.Fprintf(w, "%s: %s %s\n", loc, f.Status, f.Reference)
		}
	}
	for _, m := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
	fmt.Fprintln(w, r.Summary())
}

// Summary is one line of counts.
func (r *Report) Summary() string {
	refs := 0
	for _, f := range r.Findings {
		if f.Kind == KindImage || f.Kind == KindSplit {
			refs++
		}
	}
	parts := []string{fmt.Sprintf("%d image references in %d files", refs, r.Files)}
	for _, s := range []struct {
		st   Status
		word string
	}{
		{StatusPinned, "already pinned"}, {StatusRewritten, "pinned now"}, {StatusUnpinned, "to pin"},
		{StatusManual, "to pin by hand"}, {StatusUnapproved, "not approved"}, {StatusScript, "remote scripts"},
		{StatusNote, "notes"}, {StatusIgnored, "ignored"},
	} {
		if n := r.Count(s.st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.word))
		}
	}
	if len(r.Errors) > 0 {
		parts = append(parts, fmt.Sprintf("%d files with errors (unchanged)", len(r.Errors)))
	}
	if n := len(r.Changed); n > 0 {
		if r.Mode == ModeWrite {
			parts = append(parts, fmt.Sprintf("%d files changed", n))
		} else {
			parts = append(parts, fmt.Sprintf("%d files would change", n))
		}
	}
	if r.Offline {
		parts = append(parts, "offline (lock file)")
	}
	return strings.Join(parts, ", ")
}

func locate(path string, line, col int) string {
	switch {
	case line > 0 && col > 0:
		return fmt.Sprintf("%s:%d:%d", path, line, col)
	case line > 0:
		return fmt.Sprintf("%s:%d", path, line)
	}
	return path
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// SARIF rules, one per kind of finding.
var sarifRules = []struct {
	id, name, short, help, level string
	status                       Status
}{
	{"airlock/unpinned-image", "UnpinnedImage", "Image reference not pinned to an approved private digest",
		"Run `airlock pin --write` to rewrite it to REGISTRY/repo:tag@sha256:… of the approved digest.", "error", StatusUnpinned},
	{"airlock/unapproved-image", "UnapprovedImage", "No approved digest for this image",
		"Import the image (`airlock import`), let it be vetted and approved, then pin it.", "error", StatusUnapproved},
	{"airlock/manual-pin", "ManualPin", "Image reference cannot be rewritten in place",
		"Write the suggested pinned reference by hand (it is composed from variables or split across lines).", "error", StatusManual},
	{"airlock/remote-script", "RemoteScript", "Remote script executed without verification",
		"Download the script to a file, verify its sha256 checksum, then run it (or use ADD --checksum).", "error", StatusScript},
	{"airlock/note", "Note", "Reference left alone", "Templated values are resolved by the tool that renders them; pin the values they come from.", "note", StatusNote},
	{"airlock/input-error", "InputError", "File could not be read", "Fix the file: it was left unchanged.", "error", ""},
}

// WriteSARIF writes a SARIF 2.1.0 log for code-scanning UIs.
func (r *Report) WriteSARIF(w io.Writer, version string) error {
	type message struct {
		Text string `json:"text"`
	}
	type region struct {
		StartLine   int `json:"startLine,omitempty"`
		StartColumn int `json:"startColumn,omitempty"`
	}
	type artifact struct {
		URI       string `json:"uri"`
		URIBaseID string `json:"uriBaseId,omitempty"`
	}
	type physical struct {
		ArtifactLocation artifact `json:"artifactLocation"`
		Region           *region  `json:"region,omitempty"`
	}
	type location struct {
		PhysicalLocation physical `json:"physicalLocation"`
	}
	type result struct {
		RuleID     string         `json:"ruleId"`
		RuleIndex  int            `json:"ruleIndex"`
		Level      string         `json:"level"`
		Message    message        `json:"message"`
		Locations  []location     `json:"locations"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	type rule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     message           `json:"shortDescription"`
		Help                 message           `json:"help"`
		DefaultConfiguration map[string]string `json:"defaultConfiguration"`
	}
	var rules []rule
	index := map[Status]int{}
	for i, sr := range sarifRules {
		rules = append(rules, rule{ID: sr.id, Name: sr.name, ShortDescription: message{sr.short}, Help: message{sr.help},
			DefaultConfiguration: map[string]string{"level": sr.level}})
		if sr.status != "" {
			index[sr.status] = i
		}
	}
	loc := func(path string, line, col int) []location {
		l := location{PhysicalLocation: physical{ArtifactLocation: artifact{URI: strings.TrimPrefix(toSlash(path), "./"), URIBaseID: "%SRCROOT%"}}}
		if line > 0 {
			l.PhysicalLocation.Region = &region{StartLine: line, StartColumn: col}
		}
		return []location{l}
	}
	results := []result{}
	for _, f := range r.Findings {
		i, ok := index[f.Status]
		if !ok {
			continue
		}
		var text string
		switch f.Status {
		case StatusUnpinned:
			text = fmt.Sprintf("%s is not pinned to an approved private digest; pin it to %s", f.Reference, f.Suggestion)
		case StatusManual:
			text = fmt.Sprintf("%s is not pinned (%s); write %s", f.Reference, f.Message, f.Suggestion)
		case StatusUnapproved:
			text = fmt.Sprintf("%s has no approved digest: %s", f.Reference, f.Message)
		case StatusScript:
			text = fmt.Sprintf("%s: %s", f.Reference, f.Message)
		default:
			text = f.Message
		}
		props := map[string]any{"format": f.Format}
		if f.Suggestion != "" {
			props["suggestion"] = f.Suggestion
		}
		results = append(results, result{RuleID: sarifRules[i].id, RuleIndex: i, Level: sarifRules[i].level,
			Message: message{text}, Locations: loc(f.Path, f.Line, f.Col), Properties: props})
	}
	for _, e := range r.Errors {
		i := len(sarifRules) - 1
		results = append(results, result{RuleID: sarifRules[i].id, RuleIndex: i, Level: "error", Message: message{e.Message},
			Locations: loc(e.Path, e.Line, 0)})
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "airlock pin", "version": version, "informationUri": "https://github.com/airlock-dev/airlock",
				"rules": rules,
			}},
			"columnKind": "unicodeCodePoints",
			"results":    results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}
