package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// MediaType is the artifactType of a profile attached to its digest as an
// OCI referrer.
const MediaType = "application/vnd.airlock.profile.v1+json"

// MaxDocument bounds a profile document read by Parse.
const MaxDocument = 32 << 20

// Normalize returns p without what changes from run to run of the same
// behaviour: the start time, counts, resource figures, raw first bytes,
// the per-run addresses of named destinations and measured numbers in
// notes. Two runs of one image are equal after Normalize.
func Normalize(p Profile) Profile {
	q := clone(p)
	q.Run.StartedAt = ""
	q.Stats = Stats{}
	q.Resources = Resources{}
	for i := range q.Executables {
		q.Executables[i].Count = 0
	}
	for _, l := range []*[]Path{&q.Files.Read, &q.Files.Written, &q.Files.Created, &q.Files.Deleted, &q.Files.Chmod, &q.Files.Missing} {
		for i := range *l {
			(*l)[i].Count = 0
		}
	}
	for i := range q.Network.DNS {
		q.Network.DNS[i].Count = 0
	}
	// Counts gone, destinations differing only in the sinkhole address of
	// one name are one destination.
	dests := q.Network.Destinations[:0]
	seen := map[string]bool{}
	for _, d := range q.Network.Destinations {
		d.Count, d.FirstBytes = 0, ""
		if d.Name != "" {
			d.IP = ""
		}
		k := d.Key() + "\x00" + d.IP + "\x00" + d.Detail
		if !seen[k] {
			seen[k] = true
			dests = append(dests, d)
		}
	}
	q.Network.Destinations = dests
	sortDestinations(q.Network.Destinations)
	for i := range q.Probes {
		q.Probes[i].Output = ""
	}
	for i, n := range q.Notes {
		if msg, ok := measuredNotes[n.Code]; ok {
			q.Notes[i].Message = msg
		}
	}
	q.Notes = sortNotes(q.Notes)
	return q
}

func clone(p Profile) Profile {
	b, err := json.Marshal(p)
	if err != nil {
		return p
	}
	var q Profile
	if json.Unmarshal(b, &q) != nil {
		return p
	}
	return q
}

// Marshal renders p as indented JSON with a final newline.
func Marshal(p Profile) ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ErrInvalid marks a document that is not a profile Airlock can read.
var ErrInvalid = errors.New("not a valid profile document")

// Parse reads a profile document (untrusted: a file given to `airlock
// profile diff`, a referrer fetched from a registry). It refuses a document
// larger than MaxDocument, one that is not JSON, one of another schema
// version, trailing data, and values outside the schema's domain (relative
// paths, impossible ports, unknown severities). Unknown fields are allowed:
// later versions of v1 add fields.
func Parse(r io.Reader) (Profile, error) {
	var p Profile
	data, err := io.ReadAll(io.LimitReader(r, MaxDocument+1))
	if err != nil {
		return p, fmt.Errorf("read profile: %w", err)
	}
	if len(data) > MaxDocument {
		return p, fmt.Errorf("%w: larger than %d MiB", ErrInvalid, MaxDocument>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Profile{}, fmt.Errorf("%w: data after the document", ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	p.fill()
	return p, nil
}

// Validate checks p against the schema.
func (p Profile) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if p.SchemaVersion != SchemaVersion {
		return bad("schemaVersion is %q, want %q (make it with this version of airlock profile)", printable(p.SchemaVersion, 64), SchemaVersion)
	}
	if d := p.Image.Digest; d != "" && !validDigest(d) {
		return bad("image digest %q is not sha256:<64 hex>", printable(d, 80))
	}
	for _, e := range p.Executables {
		if !strings.HasPrefix(e.Path, "/") {
			return bad("executable %q is not an absolute path", printable(e.Path, 80))
		}
		if e.Count < 0 {
			return bad("executable %s has a negative count", printable(e.Path, 80))
		}
	}
	for name, l := range map[string][]Path{"read": p.Files.Read, "written": p.Files.Written, "created": p.Files.Created,
		"deleted": p.Files.Deleted, "chmod": p.Files.Chmod, "missing": p.Files.Missing} {
		for _, f := range l {
			if !strings.HasPrefix(f.Path, "/") || f.Count < 0 {
				return bad("files.%s has %q, not an absolute path with a count", name, printable(f.Path, 80))
			}
		}
	}
	for _, d := range p.Network.Destinations {
		if d.Port < 0 || d.Port > 65535 || d.Count < 0 {
			return bad("destination %s:%d is out of range", printable(d.IP, 64), d.Port)
		}
	}
	for _, l := range p.Network.Listening {
		if l.Port < 0 || l.Port > 65535 {
			return bad("listening port %d is out of range", l.Port)
		}
	}
	for _, n := range p.Notes {
		if _, ok := severityRank[n.Severity]; !ok || n.Code == "" {
			return bad("note %q has severity %q, want info, warning or critical", printable(n.Code, 64), printable(n.Severity, 32))
		}
	}
	return nil
}

func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// fill replaces absent lists with empty ones, so a parsed document
// marshals like a built one.
func (p *Profile) fill() {
	for _, l := range []*[]Path{&p.Files.Read, &p.Files.Written, &p.Files.Created, &p.Files.Deleted, &p.Files.Chmod, &p.Files.Missing} {
		if *l == nil {
			*l = []Path{}
		}
	}
	if p.Executables == nil {
		p.Executables = []Exec{}
	}
	for i := range p.Executables {
		if p.Executables[i].Argv == nil {
			p.Executables[i].Argv = [][]string{}
		}
		if p.Executables[i].Parents == nil {
			p.Executables[i].Parents = []string{}
		}
	}
	if p.Network.DNS == nil {
		p.Network.DNS = []DNSQuery{}
	}
	if p.Network.Destinations == nil {
		p.Network.Destinations = []Destination{}
	}
	if p.Network.Listening == nil {
		p.Network.Listening = []Listen{}
	}
	if p.Probes == nil {
		p.Probes = []Probe{}
	}
	if p.Notes == nil {
		p.Notes = []Note{}
	}
}

// WriteTable renders p for people: notes first, then what ran, the
// network, and the files written.
func WriteTable(w io.Writer, p Profile) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "image\t%s\n", p.Image.Digest)
	if p.Image.Reference != "" {
		fmt.Fprintf(tw, "reference\t%s\n", p.Image.Reference)
	}
	exit := fmt.Sprintf("code %d", p.Exit.Code)
	switch {
	case p.Exit.TimedOut:
		exit = "still running at the time limit"
	case p.Exit.Signal != 0:
		exit = fmt.Sprintf("signal %d", p.Exit.Signal)
	}
	fmt.Fprintf(tw, "run\t%s for at most %s (%s mode)\n", strings.Join(append(append([]string{}, p.Run.Entrypoint...), p.Run.Cmd...), " "), p.Run.Duration, p.Run.Mode)
	fmt.Fprintf(tw, "exit\t%s\n", exit)
	fmt.Fprintf(tw, "resources\tcpu %.2f s, peak memory %d MiB, peak processes %d\n", p.Resources.CPUSeconds, p.Resources.PeakMemoryBytes>>20, p.Resources.PeakPids)
	fmt.Fprintln(tw)
	if len(p.Notes) > 0 {
		fmt.Fprintln(tw, "SEVERITY\tNOTE\tMESSAGE")
		for _, n := range p.Notes {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Severity, n.Code, n.Message)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "EXECUTABLE\tRUNS\tSTARTED BY")
	for _, e := range p.Executables {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", e.Path, e.Count, strings.Join(e.Parents, ", "))
	}
	if len(p.Network.Destinations)+len(p.Network.Listening)+len(p.Network.DNS) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "NETWORK\tWHAT\tDETAIL")
		for _, q := range p.Network.DNS {
			fmt.Fprintf(tw, "dns %s\t%s\t%d queries\n", q.Type, q.Name, q.Count)
		}
		for _, d := range p.Network.Destinations {
			fmt.Fprintf(tw, "connect\t%s\t%s\n", d.Key(), d.Detail)
		}
		for _, l := range p.Network.Listening {
			fmt.Fprintf(tw, "listen\t%s %s:%d\t\n", l.Proto, l.Addr, l.Port)
		}
	}
	written := append(append([]Path{}, p.Files.Written...), p.Files.Created...)
	sort.Slice(written, func(i, j int) bool { return written[i].Path < written[j].Path })
	if len(written) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "WRITTEN\tTIMES")
		for _, f := range written {
			fmt.Fprintf(tw, "%s\t%d\n", f.Path, f.Count)
		}
	}
	fmt.Fprintf(tw, "\n%d files read, %d missing, %d events from %d processes\n", len(p.Files.Read), len(p.Files.Missing), p.Stats.Events, p.Stats.Processes)
	return tw.Flush()
}
