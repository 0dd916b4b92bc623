package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Record is one OSV advisory (https://ossf.github.io/osv-schema/), with the
// fields matching reads; everything else stays in the stored JSON.
type Record struct {
	SchemaVersion    string          `json:"schema_version,omitempty"`
	ID               string          `json:"id"`
	Modified         string          `json:"modified"`
	Published        string          `json:"published,omitempty"`
	Withdrawn        string          `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Upstream         []string        `json:"upstream,omitempty"`
	Related          []string        `json:"related,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Details          string          `json:"details,omitempty"`
	Severity         []Severity      `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected,omitempty"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`

	// header is the record without affected[]; rawAffected are its entries
	// as written. ParseRecord sets both; they are what the database stores
	// so that a match reads only the entry that matched.
	header      []byte
	rawAffected []json.RawMessage
}

// Severity is one OSV severity entry: a CVSS vector or a vendor's word.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one affected package of a record.
type Affected struct {
	Package           Package         `json:"package"`
	Severity          []Severity      `json:"severity,omitempty"`
	Ranges            []Range         `json:"ranges,omitempty"`
	Versions          []Text          `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// Package names an affected package.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range is one affected range; only ECOSYSTEM and SEMVER ranges are
// evaluated (GIT ranges name commits, which images do not carry).
type Range struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Events []Event `json:"events"`
}

// Event is one range event; exactly one field is set.
type Event struct {
	Introduced   Text `json:"introduced,omitempty"`
	Fixed        Text `json:"fixed,omitempty"`
	LastAffected Text `json:"last_affected,omitempty"`
	Limit        Text `json:"limit,omitempty"`
}

// Text is a version string that also accepts a bare JSON number, because
// YAML advisories write versions such as 1.10 unquoted.
type Text string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9') {
		*t = Text(b)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = Text(s)
	return nil
}

// Limits on one record: real records are at most a few megabytes (the
// largest Linux kernel records); anything bigger is refused, not parsed.
const (
	MaxRecordBytes = 32 << 20
	maxYAMLDepth   = 64
)

// ErrBadRecord is wrapped by every error about a record that cannot be used.
var ErrBadRecord = errors.New("bad OSV record")

func badRecord(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRecord, fmt.Sprintf(format, a...))
}

// ParseRecord reads one OSV record from JSON or YAML (the PyPA database is
// YAML) and checks what matching relies on: an id, a modified time, and
// package ecosystem and name on every affected entry that has ranges or
// versions. It returns the record and its compact JSON.
func ParseRecord(data []byte) (*Record, []byte, error) {
	if len(data) > MaxRecordBytes {
		return nil, nil, badRecord("larger than %d bytes", MaxRecordBytes)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	trimmed = bytes.TrimPrefix(trimmed, []byte("\ufeff"))
	var js []byte
	if len(trimmed) > 0 && trimmed[0] == '{' {
		js = trimmed
	} else {
		var err error
		if js, err = yamlToJSON(trimmed); err != nil {
			return nil, nil, err
		}
	}
	if !utf8.Valid(js) {
		return nil, nil, badRecord("not valid UTF-8")
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&r); err != nil {
		return nil, nil, badRecord("invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, nil, badRecord("trailing data after the record")
	}
	if err := r.check(); err != nil {
		return nil, nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, js); err != nil {
		return nil, nil, badRecord("invalid JSON: %v", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(compact.Bytes(), &fields); err != nil {
		return nil, nil, badRecord("invalid JSON: %v", err)
	}
	if raw, ok := fields["affected"]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &r.rawAffected); err != nil || len(r.rawAffected) != len(r.Affected) {
			return nil, nil, badRecord("%s: affected is not a list", r.ID)
		}
	}
	delete(fields, "affected")
	header, err := json.Marshal(fields)
	if err != nil {
		return nil, nil, badRecord("%s: %v", r.ID, err)
	}
	r.header = header
	return &r, compact.Bytes(), nil
}

func (r *Record) check() error {
	if r.ID == "" {
		return badRecord("no id")
	}
	if len(r.ID) > 256 || strings.ContainsAny(r.ID, " \t\r\n/\\") {
		return badRecord("id %.64q is not an advisory id", r.ID)
	}
	if r.Modified == "" {
		return badRecord("%s: no modified time", r.ID)
	}
	m, err := parseTime(r.Modified)
	if err != nil {
		return badRecord("%s: modified %q is not an RFC 3339 time", r.ID, r.Modified)
	}
	r.Modified = formatTime(m)
	if r.Withdrawn != "" {
		if _, err := parseTime(r.Withdrawn); err != nil {
			return badRecord("%s: withdrawn %q is not an RFC 3339 time", r.ID, r.Withdrawn)
		}
	}
	for i, a := range r.Affected {
		if len(a.Ranges) == 0 && len(a.Versions) == 0 {
			continue
		}
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			return badRecord("%s: affected[%d] has ranges or versions but no package ecosystem and name", r.ID, i)
		}
		for j, rg := range a.Ranges {
			if rg.Type == "" {
				return badRecord("%s: affected[%d].ranges[%d] has no type", r.ID, i, j)
			}
		}
	}
	return nil
}

// parseTime reads OSV's RFC 3339 times; osv.dev accepts them without a zone
// ("2023-01-05T15:15:00") too, read as UTC.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an RFC 3339 time: %q", s)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// yamlToJSON converts a YAML document to JSON text, keeping scalars as they
// are written (a version 1.10 stays "1.10"), refusing aliases (an OSV record
// has no use for them, and expanding them is how YAML bombs work) and
// nesting deeper than maxYAMLDepth.
func yamlToJSON(data []byte) ([]byte, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, badRecord("invalid YAML: %v", err)
	}
	var buf bytes.Buffer
	if err := writeYAMLNode(&buf, &doc, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeYAMLNode(buf *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > maxYAMLDepth {
		return badRecord("YAML nested deeper than %d levels", maxYAMLDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return badRecord("YAML document is empty")
		}
		return writeYAMLNode(buf, n.Content[0], depth+1)
	case yaml.AliasNode:
		return badRecord("YAML aliases are not allowed in OSV records")
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return badRecord("YAML mapping key at line %d is not a string", k.Line)
			}
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k.Value)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeYAMLNode(buf, v, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeYAMLNode(buf, c, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			buf.WriteString("null")
			return nil
		case "!!bool":
			if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
				buf.WriteString(strconv.FormatBool(b))
				return nil
			}
		case "!!int", "!!float":
			if json.Valid([]byte(n.Value)) {
				buf.WriteString(n.Value)
				return nil
			}
		}
		vb, _ := json.Marshal(n.Value)
		buf.Write(vb)
	default:
		return badRecord("unexpected YAML node at line %d", n.Line)
	}
	return nil
}
