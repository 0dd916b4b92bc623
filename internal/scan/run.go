package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Options configure one scan.
type Options struct {
	Reference  string // as the user gave it
	Repository string // repository name checked for impersonation ("" skips the check)
	Detectors  []Detector
	Matcher    Matcher // nil: no advisory database, vulnerabilities not matched
	Limits     Limits
	TempDir    string // where the tree is unpacked (default os.TempDir())
	Now        time.Time
	Version    string // Airlock's version, recorded in the report
	Rules      int
	RulesHash  string
	// Progress is told about each stage ("layers", "inventory", "detectors", "advisories").
	Progress func(stage string)
}

// Run scans img: it walks the layers once (offering each file to the
// detectors and writing what the inventory needs to a private temporary
// tree), takes the inventory, runs the image-level detectors and matches
// the packages against the advisory database. Any failure fails the scan:
// a partial report is never presented as a complete one.
func Run(ctx context.Context, img v1.Image, o Options) (*Report, error) {
	start := time.Now()
	if o.Now.IsZero() {
		o.Now = start
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if cf == nil {
		return nil, errors.New("image has no config")
	}
	dir, err := os.MkdirTemp(o.TempDir, "airlock-scan-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(tree, 0o700); err != nil {
		return nil, err
	}
	inv, err := newInventory()
	if err != nil {
		return nil, err
	}
	col := &collector{}
	sinks := []FileSink{inv}
	for _, d := range o.Detectors {
		sinks = append(sinks, detectorSink{d, col})
	}
	progress("layers")
	t, err := Unpack(ctx, img, tree, o.Limits, inv.Wanted, sinks...)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	osr := OSRelease(t)
	progress("inventory")
	pkgs, owned, err := inv.run(ctx, t, osr)
	if err != nil {
		return nil, err
	}
	r := &Report{
		SchemaVersion: ReportSchemaVersion,
		Image: ImageInfo{Reference: o.Reference, Repository: o.Repository, Digest: dg.String(), Layers: t.Layers,
			OS: OSInfo{ID: osr["ID"], VersionID: osr["VERSION_ID"], PrettyName: osr["PRETTY_NAME"]}},
		Scanner:   ScannerInfo{Version: o.Version, Inventory: InventoryLibrary, Rules: o.Rules, RulesDigest: o.RulesHash},
		Packages:  pkgs,
		ScannedAt: o.Now.UTC(),
	}
	if r.Packages == nil {
		r.Packages = []Package{}
	}
	if eol, _, ok := EndOfLife(osr["ID"], osr["VERSION_ID"]); ok {
		r.Image.OS.EOL = eol.Format("2006-01-02")
	}
	r.Image.Platform = cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		r.Image.Platform += "/" + cf.Variant
	}
	im := &Image{Info: r.Image, Config: cf, Tree: t, OS: osr, Packages: pkgs, Owned: owned, Now: o.Now}
	if c := cf.Created.Time; c.Year() > 1980 {
		r.Image.Created = c.UTC()
	}
	progress("detectors")
	for _, d := range o.Detectors {
		fs, err := d.Image(ctx, im)
		if err != nil {
			return nil, fmt.Errorf("detector %s: %w", d.Name(), err)
		}
		col.add(fs)
	}
	if col.err != nil {
		return nil, col.err
	}
	r.Findings = col.findings
	if o.Matcher != nil {
		progress("advisories")
		vs, err := o.Matcher.Match(ctx, pkgs)
		if err != nil {
			return nil, fmt.Errorf("match advisories: %w", err)
		}
		r.Vulnerabilities = vs
		r.Scanner.AdvisoryDB = o.Matcher.Snapshot()
		for _, v := range vs {
			r.Findings = append(r.Findings, VulnerabilityFinding(v))
		}
	} else {
		r.Notes = append(r.Notes, "no advisory database: known vulnerabilities were not matched (import one with `airlock db import`)")
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	r.Scanner.DurationSecs = time.Since(start).Seconds()
	r.Finish()
	return r, nil
}

// collector gathers findings from detectors running in parallel.
type collector struct {
	mu       sync.Mutex
	findings []Finding
	err      error
}

func (c *collector) add(fs []Finding) {
	c.mu.Lock()
	c.findings = append(c.findings, fs...)
	c.mu.Unlock()
}

func (c *collector) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

type detectorSink struct {
	d Detector
	c *collector
}

func (s detectorSink) Want(f *File) bool { return s.d.Want(f) }

func (s detectorSink) Content(ctx context.Context, f *File, r io.Reader) error {
	fs, err := s.d.Content(ctx, f, r)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// One unreadable file does not hide the rest; the scan still fails
		// closed, with the reason, once every layer was read.
		s.c.fail(fmt.Errorf("detector %s on %s: %w", s.d.Name(), f.Path, err))
		return nil
	}
	s.c.add(fs)
	return nil
}

// RepositoryOf returns the repository of an image reference without tag
// or digest: "docker.io/library/nginx:1.25" → "docker.io/library/nginx".
func RepositoryOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		ref = ref[:i]
	}
	return ref
}
