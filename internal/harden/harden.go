package harden

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/profile"
)

// ReportSchemaVersion identifies the harden report format.
const ReportSchemaVersion = "airlock.dev/harden/v1"

// Annotations set on the hardened image's manifest.
const (
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
	AnnotationProfile    = "dev.airlock.harden.profile" // digest of the profile document
	AnnotationOriginal   = "dev.airlock.harden.original"
	AnnotationVersion    = "dev.airlock.harden.version"
	AnnotationKeep       = "dev.airlock.harden.keep" // digest of the declared keep-list, when there was one
)

// ArtifactType is the artifact type of the harden report attached to the
// original image as a referrer.
const ArtifactType = "application/vnd.airlock.harden.v1+json"

// Options configure one hardening.
type Options struct {
	// Keep is the declared keep-list (flags, config file); the image's
	// KeepLabel is read and added by Harden.
	Keep []KeepRule
	// NoDefaults names defaults (see Defaults) not to keep.
	NoDefaults []string
	// ProfileDigest is the digest of the profile document as stored or
	// given (sha256 of its bytes); computed from the parsed profile if empty.
	ProfileDigest string
	Version       string
	TempDir       string
	Limits        Limits
}

// Result is a hardened image and its report. Close removes the temporary
// files the image's layer is read from.
type Result struct {
	Image  v1.Image
	Report *Report
	dir    string
}

// Close releases the hardened layer's temporary file.
func (r *Result) Close() error {
	if r == nil || r.dir == "" {
		return nil
	}
	err := os.RemoveAll(r.dir)
	r.dir = ""
	return err
}

// Report says what hardening kept, removed and why.
type Report struct {
	SchemaVersion string        `json:"schemaVersion"`
	Original      ImageSummary  `json:"original"`
	Hardened      ImageSummary  `json:"hardened"`
	ProfileDigest string        `json:"profileDigest"`
	Keep          []KeepRule    `json:"keep"`
	NoDefaults    []string      `json:"noDefaults"`
	Kept          []KeptFile    `json:"kept"`
	Removed       Removed       `json:"removed"`
	Packages      PackageChange `json:"packages"`
	// Replay is filled by Replay; nil until the hardened image was run.
	Replay *ReplayResult `json:"replay,omitempty"`
	// Findings compares scans of both images, when they were scanned.
	Findings *FindingChange `json:"findings,omitempty"`
	Notes    []string       `json:"notes"`
	Version  string         `json:"version,omitempty"`
}

// ImageSummary is one side of the comparison.
type ImageSummary struct {
	Digest string `json:"digest"`
	// Size is the sum of the compressed layers (what a pull transfers).
	Size int64 `json:"size"`
	// Files and Bytes count the final file set (regular file content).
	Files  int   `json:"files"`
	Bytes  int64 `json:"bytes"`
	Layers int   `json:"layers"`
}

// KeptFile is one path of the hardened image and why it is there.
type KeptFile struct {
	Path    string   `json:"path"`
	Type    string   `json:"type"` // file, dir, symlink, hardlink, char, block, fifo
	Size    int64    `json:"size,omitempty"`
	Reasons []string `json:"reasons"`
}

// Removed is what the hardened image does not have.
type Removed struct {
	Files       int      `json:"files"`
	Bytes       int64    `json:"bytes"`
	Executables []string `json:"executables"`
}

// FindingChange compares the scan findings of both images.
type FindingChange struct {
	Original int      `json:"original"`
	Hardened int      `json:"hardened"`
	Removed  []string `json:"removed"` // "TYPE ID at PATH"
}

// Harden builds the hardened image of img from what pr saw it use.
func Harden(ctx context.Context, img v1.Image, pr *profile.Profile, o Options) (*Result, error) {
	if pr == nil {
		return nil, errors.New("hardening needs a profile of the image; run airlock profile first")
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read the image's config: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("digest the image: %w", err)
	}
	if pr.Image.Digest != "" && pr.Image.Digest != digest.String() {
		return nil, &InputError{Err: fmt.Errorf("the profile is of %s, not of this image (%s); profile this image first", pr.Image.Digest, digest)}
	}
	off := map[string]bool{}
	for _, n := range o.NoDefaults {
		found := false
		for _, d := range Defaults {
			if d.Name == n {
				found = true
			}
		}
		if !found {
			return nil, &InputError{Err: fmt.Errorf("--no-default %q is not a default; the defaults are %s", n, strings.Join(DefaultNames(), ", "))}
		}
		off[n] = true
	}
	keep := append([]KeepRule(nil), o.Keep...)
	keep = append(keep, ParseKeepLabel(cf.Config.Labels[KeepLabel])...)
	for _, r := range keep {
		if err := ValidateGlob(r.Glob); err != nil {
			return nil, &InputError{Err: fmt.Errorf("%s (from the %s)", err, r.Source)}
		}
	}
	if o.ProfileDigest == "" {
		b, err := json.Marshal(pr)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		o.ProfileDigest = "sha256:" + hex.EncodeToString(sum[:])
	}
	ix, err := NewIndex(ctx, img, o.TempDir, o.Limits)
	if err != nil {
		return nil, err
	}
	defer ix.Close()

	k := newKeepSet(ix, cf.Config.Env)
	k.fromProfile(pr)
	// The entrypoint and cmd run even if the profile missed them (a run
	// that failed to start records nothing).
	if argv := append(append([]string(nil), cf.Config.Entrypoint...), cf.Config.Cmd...); len(argv) > 0 {
		prog := argv[0]
		if !strings.HasPrefix(prog, "/") && strings.Contains(prog, "/") {
			// "./app" runs from the working directory.
			prog = path.Join("/", cf.Config.WorkingDir, prog)
		}
		if p := ix.lookPath(prog, k.pathEnv); p != "" {
			k.addResolved(p, "entrypoint")
		}
	}
	if wd := cf.Config.WorkingDir; wd != "" {
		k.addResolved(wd, "working directory")
	}
	for _, r := range keep {
		if n := k.addGlob(r.Glob, "keep "+r.Glob+" ("+r.Source+")"); n == 0 {
			k.notes = append(k.notes, fmt.Sprintf("keep %s (%s) matched nothing in the image", r.Glob, r.Source))
		}
	}
	for _, d := range Defaults {
		if off[d.Name] {
			continue
		}
		for _, g := range d.Globs {
			k.addGlob(g, "default "+d.Name+" ("+d.What+")")
		}
		if d.Name == "tmp" {
			for _, dir := range scratchDirs {
				if e, ok := ix.entries[dir]; ok && e.IsDir() {
					k.add(dir, "default tmp ("+d.What+")")
				}
			}
		}
	}
	k.close()
	pkgs := k.packages(!off["package-metadata"])
	k.close()

	dir, err := os.MkdirTemp(o.TempDir, "airlock-hardened-")
	if err != nil {
		return nil, err
	}
	res := &Result{dir: dir}
	hardened, err := k.build(cf, digest.String(), o, filepath.Join(dir, "layer.tar"))
	if err != nil {
		res.Close()
		return nil, err
	}
	res.Image = hardened

	rep := &Report{SchemaVersion: ReportSchemaVersion, ProfileDigest: o.ProfileDigest, Keep: keep, NoDefaults: o.NoDefaults,
		Packages: pkgs, Notes: k.notes, Version: o.Version, Kept: []KeptFile{}}
	if rep.Keep == nil {
		rep.Keep = []KeepRule{}
	}
	if rep.NoDefaults == nil {
		rep.NoDefaults = []string{}
	}
	if rep.Notes == nil {
		rep.Notes = []string{}
	}
	if rep.Original, err = summarize(img, ix, nil); err != nil {
		res.Close()
		return nil, err
	}
	if rep.Hardened, err = summarize(hardened, ix, k.reasons); err != nil {
		res.Close()
		return nil, err
	}
	for _, p := range k.sortedPaths() {
		e := ix.entries[p]
		kf := KeptFile{Path: p, Type: typeName(e), Size: e.Size(), Reasons: k.reasons[p]}
		if b, ok := k.synthetic[p]; ok {
			kf.Size = int64(len(b))
		}
		rep.Kept = append(rep.Kept, kf)
	}
	rep.Removed.Executables = []string{}
	for _, p := range ix.Paths() {
		if _, ok := k.reasons[p]; ok {
			continue
		}
		e := ix.entries[p]
		rep.Removed.Files++
		rep.Removed.Bytes += e.Size()
		if e.IsRegular() && e.Header.Mode&0o111 != 0 {
			rep.Removed.Executables = append(rep.Removed.Executables, p)
		}
	}
	res.Report = rep
	return res, nil
}

// InputError is bad input (a profile of another image, a malformed keep
// glob, an unknown default): the caller's mistake, not a failure.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func typeName(e *Entry) string {
	switch e.Header.Typeflag {
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	case tar.TypeFifo:
		return "fifo"
	}
	return "file"
}

// summarize describes img; with kept set, the file set is the kept subset
// of ix, otherwise all of ix.
func summarize(img v1.Image, ix *Index, kept map[string][]string) (ImageSummary, error) {
	var s ImageSummary
	d, err := img.Digest()
	if err != nil {
		return s, err
	}
	s.Digest = d.String()
	layers, err := img.Layers()
	if err != nil {
		return s, err
	}
	s.Layers = len(layers)
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return s, err
		}
		s.Size += n
	}
	seen := map[int]bool{}
	for p, e := range ix.entries {
		if kept != nil {
			if _, ok := kept[p]; !ok {
				continue
			}
		}
		s.Files++
		if e.IsRegular() && !seen[e.blob] {
			seen[e.blob] = true
			s.Bytes += e.Size()
		}
	}
	return s, nil
}

// build writes the kept paths as one sorted, reproducible layer to
// layerPath and returns the hardened image with the original's config.
func (k *keepSet) build(cf *v1.ConfigFile, original string, o Options, layerPath string) (v1.Image, error) {
	f, err := os.OpenFile(layerPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := k.writeLayer(f, cf.Created.Time); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the hardened layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, History: v1.History{
		Created:   cf.Created,
		CreatedBy: "airlock harden",
		Comment:   "hardened from " + original + " with profile " + o.ProfileDigest,
	}})
	if err != nil {
		return nil, err
	}
	ncf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	ncf = ncf.DeepCopy()
	ncf.Architecture, ncf.OS, ncf.OSVersion, ncf.Variant, ncf.OSFeatures = cf.Architecture, cf.OS, cf.OSVersion, cf.Variant, cf.OSFeatures
	ncf.Created = cf.Created
	ncf.Author = cf.Author
	ncf.Config = *cf.Config.DeepCopy()
	img, err = mutate.ConfigFile(img, ncf)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{AnnotationBaseDigest: original, AnnotationOriginal: original, AnnotationProfile: o.ProfileDigest}
	if o.Version != "" {
		ann[AnnotationVersion] = o.Version
	}
	if len(o.Keep) > 0 {
		b, _ := json.Marshal(o.Keep)
		sum := sha256.Sum256(b)
		ann[AnnotationKeep] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return mutate.Annotations(img, ann).(v1.Image), nil
}

// writeLayer writes every kept path in sorted order. Headers are the
// layers' own (mode, owner, xattrs, mtime) with access and change times
// dropped; directories the image never named and rewritten package
// databases get the image's creation time. Paths sharing content through
// hard links stay hard links, to the first of them in order.
func (k *keepSet) writeLayer(w io.Writer, created time.Time) error {
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC().Truncate(time.Second)
	tw := tar.NewWriter(w)
	firstOfBlob := map[int]string{}
	written := map[string]bool{"/": true}
	for _, p := range k.sortedPaths() {
		// Ancestors sort before their descendants; one the image never
		// named (or did not keep) is written as a plain directory.
		var missing []string
		for d := path.Dir(p); !written[d]; d = path.Dir(d) {
			missing = append(missing, d)
		}
		for i := len(missing) - 1; i >= 0; i-- {
			d := missing[i]
			written[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755,
				ModTime: created, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		written[p] = true
		if p == "/" {
			continue
		}
		e := k.ix.entries[p]
		h := e.Header
		h.Name = strings.TrimPrefix(p, "/")
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		h.ModTime = h.ModTime.UTC().Truncate(time.Second)
		h.Format = tar.FormatPAX
		h.Uname, h.Gname = "", ""
		if h.PAXRecords != nil {
			recs := map[string]string{}
			for key, v := range h.PAXRecords {
				if strings.HasPrefix(key, "SCHILY.xattr.") || strings.HasPrefix(key, "LIBARCHIVE.xattr.") {
					recs[key] = v
				}
			}
			h.PAXRecords = recs
		}
		h.Xattrs = nil //nolint:staticcheck // carried in PAXRecords
		var data io.Reader
		switch {
		case e.IsDir():
			h.Name += "/"
			h.Size = 0
		case e.IsRegular():
			if b, ok := k.synthetic[p]; ok {
				h.Typeflag, h.Size, h.Linkname, h.ModTime = tar.TypeReg, int64(len(b)), "", created
				data = bytes.NewReader(b)
				break
			}
			if first, ok := firstOfBlob[e.blob]; ok {
				h.Typeflag, h.Size, h.Linkname = tar.TypeLink, 0, strings.TrimPrefix(first, "/")
				break
			}
			firstOfBlob[e.blob] = p
			h.Typeflag, h.Linkname = tar.TypeReg, ""
			f, err := k.ix.Open(p)
			if err != nil {
				return err
			}
			data = f
		default:
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if data != nil {
			if n, err := io.Copy(tw, data); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			} else if n != h.Size {
				return fmt.Errorf("%s: wrote %d bytes of %d", p, n, h.Size)
			}
			if c, ok := data.(io.Closer); ok {
				c.Close()
			}
		}
	}
	return tw.Close()
}
