package vulndb

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/scan/version"
)

// Limits bound what one import reads, so that a hostile archive is refused
// instead of exhausting memory, disk or time.
type Limits struct {
	// RecordBytes is the largest single record (file or archive member).
	RecordBytes int64
	// ArchiveBytes is the most an archive may decompress to in total.
	ArchiveBytes int64
	// ArchiveMembers is the most members an archive may have.
	ArchiveMembers int
	// Ratio is the highest compression ratio a member may have; JSON
	// advisories compress 5–30 times, a zip bomb thousands.
	Ratio int64
}

// DefaultLimits fit osv.dev's largest per-ecosystem all.zip with room to spare.
var DefaultLimits = Limits{
	RecordBytes:    MaxRecordBytes,
	ArchiveBytes:   16 << 30,
	ArchiveMembers: 2_000_000,
	Ratio:          200,
}

// ImportOptions tune Import.
type ImportOptions struct {
	// Strict fails the whole import on the first bad record instead of
	// skipping and reporting it.
	Strict bool
	Limits Limits
}

// Problem is one record that was skipped, named by file (and archive
// member, as "all.zip:GHSA-….json").
type Problem struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// SourceReport says what one path contributed.
type SourceReport struct {
	Path     string    `json:"path"`
	Kind     string    `json:"kind"` // directory, file, zip
	Records  int       `json:"records"`
	Added    int       `json:"added"`
	Updated  int       `json:"updated"`
	Skipped  int       `json:"skipped"`
	Problems []Problem `json:"problems,omitempty"`
}

// Report is the result of one Import.
type Report struct {
	Sources  []SourceReport `json:"sources"`
	Records  int            `json:"records"` // records read, valid
	Added    int            `json:"added"`
	Updated  int            `json:"updated"`
	Skipped  int            `json:"skipped"`
	Snapshot string         `json:"snapshot"`
}

// ErrHostileArchive is wrapped by errors about archives that are refused as
// a whole: decompression bombs, oversized members, too many members, corrupt
// structure. Nothing from such an import is kept.
var ErrHostileArchive = errors.New("archive refused")

// Import loads OSV records from each path: a directory (searched
// recursively for *.json, *.yaml, *.yml and *.zip), a single JSON or YAML
// record, or a zip of JSON records such as osv.dev's per-ecosystem all.zip.
//
// One Import is one transaction: an unreadable path or a refused archive
// fails it and changes nothing. A record that cannot be used (invalid JSON,
// no id, …) is skipped and reported with its file name, or fails the import
// with ImportOptions.Strict. A record replaces a stored one with the same id
// only if its modified time is newer (ties broken by content digest), so the
// result does not depend on import order.
func (d *DB) Import(ctx context.Context, paths ...string) (Report, error) {
	return d.ImportWith(ctx, ImportOptions{}, paths...)
}

// ImportWith is Import with options.
func (d *DB) ImportWith(ctx context.Context, opts ImportOptions, paths ...string) (Report, error) {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits
	}
	if len(paths) == 0 {
		return Report{}, errors.New("import: no paths given")
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return Report{}, fmt.Errorf("import: %w", err)
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Report{}, fmt.Errorf("import: %w", err)
	}
	defer tx.Rollback()
	im, err := newImporter(ctx, tx, opts, d.now().UTC())
	if err != nil {
		return Report{}, err
	}
	defer im.close()
	var rep Report
	for _, p := range paths {
		sr, err := im.importPath(ctx, p)
		if err != nil {
			return Report{}, err
		}
		rep.Sources = append(rep.Sources, sr)
		rep.Records += sr.Records
		rep.Added += sr.Added
		rep.Updated += sr.Updated
		rep.Skipped += sr.Skipped
	}
	snap, err := computeSnapshot(ctx, tx)
	if err != nil {
		return Report{}, fmt.Errorf("import: %w", err)
	}
	for k, v := range map[string]string{"snapshot": snap, "updated_at": formatTime(d.now())} {
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, k, v); err != nil {
			return Report{}, fmt.Errorf("import: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return Report{}, fmt.Errorf("import: %w", err)
	}
	d.mu.Lock()
	d.snapshot = snap
	d.mu.Unlock()
	rep.Snapshot = snap
	return rep, nil
}

type importer struct {
	tx     *sql.Tx
	opts   ImportOptions
	at     time.Time
	get    *sql.Stmt
	put    *sql.Stmt
	del    *sql.Stmt
	aff    *sql.Stmt
	bin    *sql.Stmt
	source int64
	// ids of this source, for its digest
	seen map[string]string
	rep  *SourceReport
}

func newImporter(ctx context.Context, tx *sql.Tx, opts ImportOptions, at time.Time) (*importer, error) {
	im := &importer{tx: tx, opts: opts, at: at}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = tx.PrepareContext(ctx, q)
		return s
	}
	im.get = prep(`SELECT modified, digest FROM advisories WHERE id = ?`)
	im.put = prep(`INSERT INTO advisories (id, modified, withdrawn, digest, source, header, record) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, withdrawn = excluded.withdrawn,
		digest = excluded.digest, source = excluded.source, header = excluded.header, record = excluded.record`)
	im.del = prep(`DELETE FROM packages WHERE advisory = ?`)
	im.aff = prep(`INSERT INTO packages (advisory, idx, ecosystem, family, name, affected) VALUES (?, ?, ?, ?, ?, ?)`)
	im.bin = prep(`INSERT INTO binaries (advisory, idx, family, name) VALUES (?, ?, ?, ?)`)
	if err != nil {
		im.close()
		return nil, fmt.Errorf("import: %w", err)
	}
	return im, nil
}

func (im *importer) close() {
	for _, s := range []*sql.Stmt{im.get, im.put, im.del, im.aff, im.bin} {
		if s != nil {
			s.Close()
		}
	}
}

func (im *importer) importPath(ctx context.Context, path string) (SourceReport, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return SourceReport{}, fmt.Errorf("import %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return SourceReport{}, fmt.Errorf("import: %w", err)
	}
	sr := SourceReport{Path: abs}
	im.rep = &sr
	im.seen = map[string]string{}
	switch {
	case fi.IsDir():
		sr.Kind = "directory"
	case isZip(abs):
		sr.Kind = "zip"
	case fi.Mode().IsRegular():
		sr.Kind = "file"
	default:
		return sr, fmt.Errorf("import %s: not a directory, record file or zip archive", path)
	}
	res, err := im.tx.ExecContext(ctx, `INSERT INTO sources (path, kind, sha256, imported_at, records, skipped) VALUES (?, ?, '', ?, 0, 0)`,
		abs, sr.Kind, formatTime(im.at))
	if err != nil {
		return sr, fmt.Errorf("import %s: %w", path, err)
	}
	if im.source, err = res.LastInsertId(); err != nil {
		return sr, fmt.Errorf("import %s: %w", path, err)
	}
	switch sr.Kind {
	case "directory":
		err = im.importDir(ctx, abs)
	case "zip":
		err = im.importZip(ctx, abs)
	default:
		err = im.importFile(ctx, abs, abs)
	}
	if err != nil {
		return sr, err
	}
	if _, err := im.tx.ExecContext(ctx, `UPDATE sources SET sha256 = ?, records = ?, skipped = ? WHERE id = ?`,
		setDigest(im.seen), sr.Records, sr.Skipped, im.source); err != nil {
		return sr, fmt.Errorf("import %s: %w", path, err)
	}
	return sr, nil
}

// setDigest is the snapshot digest of the records one source held.
func setDigest(seen map[string]string) string {
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	h := sha256.New()
	for _, id := range ids {
		fmt.Fprintf(h, "%s\t%s\n", id, seen[id])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func isZip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false
	}
	return string(magic[:]) == "PK\x03\x04" || string(magic[:]) == "PK\x05\x06"
}

func recordFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

func (im *importer) importDir(ctx context.Context, root string) error {
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("import %s: %w", root, err)
		}
		if e.IsDir() {
			if path != root && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() { // symlinks, devices: not followed
			return nil
		}
		if strings.EqualFold(filepath.Ext(path), ".zip") {
			return im.importZip(ctx, path)
		}
		if !recordFile(path) {
			return nil
		}
		return im.importFile(ctx, path, path)
	})
}

func (im *importer) importFile(ctx context.Context, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, im.opts.Limits.RecordBytes+1))
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if int64(len(data)) > im.opts.Limits.RecordBytes {
		return im.problem(name, badRecord("larger than %d bytes", im.opts.Limits.RecordBytes))
	}
	return im.importRecord(ctx, name, data)
}

func (im *importer) importZip(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return fmt.Errorf("import %s: %w: not a readable zip archive: %v", path, ErrHostileArchive, err)
	}
	lim := im.opts.Limits
	if len(zr.File) > lim.ArchiveMembers {
		return fmt.Errorf("import %s: %w: %d members, more than the limit of %d", path, ErrHostileArchive, len(zr.File), lim.ArchiveMembers)
	}
	var total int64
	base := filepath.Base(path)
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Member names are only labels: nothing is written to disk.
		member := fmt.Sprintf("%s:%s", base, printable(zf.Name))
		if zf.FileInfo().IsDir() || !recordFile(zf.Name) {
			continue
		}
		if zf.UncompressedSize64 > uint64(lim.RecordBytes) {
			return fmt.Errorf("import %s: %w: member %s declares %d bytes, more than the limit of %d per record",
				path, ErrHostileArchive, member, zf.UncompressedSize64, lim.RecordBytes)
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("import %s: %w: member %s: %v", path, ErrHostileArchive, member, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, lim.RecordBytes+1))
		rc.Close()
		if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) {
			return fmt.Errorf("import %s: %w: member %s: its data does not match its header (%v)", path, ErrHostileArchive, member, err)
		}
		if err != nil {
			return fmt.Errorf("import %s: %w: member %s: %v", path, ErrHostileArchive, member, err)
		}
		n := int64(len(data))
		if n > lim.RecordBytes {
			return fmt.Errorf("import %s: %w: member %s decompresses to more than the limit of %d bytes per record",
				path, ErrHostileArchive, member, lim.RecordBytes)
		}
		if n > 1<<20 && n > lim.Ratio*int64(zf.CompressedSize64) {
			return fmt.Errorf("import %s: %w: member %s decompresses %d times its size (a decompression bomb?)",
				path, ErrHostileArchive, member, n/max(1, int64(zf.CompressedSize64)))
		}
		if total += n; total > lim.ArchiveBytes {
			return fmt.Errorf("import %s: %w: decompresses to more than the limit of %d bytes", path, ErrHostileArchive, lim.ArchiveBytes)
		}
		if err := im.importRecord(ctx, member, data); err != nil {
			return err
		}
	}
	return nil
}

// printable keeps member names readable and harmless in messages.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	q := fmt.Sprintf("%q", s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}

func (im *importer) problem(name string, err error) error {
	if im.opts.Strict {
		return fmt.Errorf("import %s: %w", name, err)
	}
	im.rep.Skipped++
	if len(im.rep.Problems) < 1000 {
		im.rep.Problems = append(im.rep.Problems, Problem{File: name, Error: err.Error()})
	}
	return nil
}

func (im *importer) importRecord(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, compact, err := ParseRecord(data)
	if err != nil {
		return im.problem(name, err)
	}
	im.rep.Records++
	im.seen[r.ID] = r.Modified
	sum := sha256.Sum256(compact)
	digest := hex.EncodeToString(sum[:])
	var oldModified, oldDigest string
	err = im.get.QueryRowContext(ctx, r.ID).Scan(&oldModified, &oldDigest)
	exists := err == nil
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("import %s: %w", name, err)
	}
	if exists {
		newT, _ := parseTime(r.Modified)
		oldT, _ := parseTime(oldModified)
		if newT.Before(oldT) || newT.Equal(oldT) && digest <= oldDigest {
			return nil
		}
	}
	var withdrawn any
	if r.Withdrawn != "" {
		withdrawn = r.Withdrawn
	}
	if _, err := im.put.ExecContext(ctx, r.ID, r.Modified, withdrawn, digest, im.source, r.header, compact); err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	if exists {
		im.rep.Updated++
		if _, err := im.del.ExecContext(ctx, r.ID); err != nil {
			return fmt.Errorf("import %s: %w", name, err)
		}
	} else {
		im.rep.Added++
	}
	for i, a := range r.Affected {
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			continue
		}
		fam := version.Family(a.Package.Ecosystem)
		if _, err := im.aff.ExecContext(ctx, r.ID, i, a.Package.Ecosystem, fam, normalizeName(fam, a.Package.Name), []byte(r.rawAffected[i])); err != nil {
			return fmt.Errorf("import %s: %w", name, err)
		}
		for _, bin := range binaryNames(a) {
			if bin == a.Package.Name {
				continue
			}
			if _, err := im.bin.ExecContext(ctx, r.ID, i, fam, normalizeName(fam, bin)); err != nil {
				return fmt.Errorf("import %s: %w", name, err)
			}
		}
	}
	return nil
}

// binaryNames lists the binary packages built from an affected source
// package, as Ubuntu's records give them in ecosystem_specific.binaries.
func binaryNames(a Affected) []string {
	if len(a.EcosystemSpecific) == 0 {
		return nil
	}
	var es struct {
		Binaries []struct {
			Name string `json:"binary_name"`
		} `json:"binaries"`
	}
	if json.Unmarshal(a.EcosystemSpecific, &es) != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, b := range es.Binaries {
		if b.Name != "" && !seen[b.Name] {
			seen[b.Name] = true
			out = append(out, b.Name)
		}
	}
	return out
}

var pypiSeparators = regexp.MustCompile(`[-_.]+`)

// normalizeName puts a package name in the form its ecosystem compares
// names in: PEP 503 for PyPI, lower case where names are case-insensitive.
func normalizeName(family, name string) string {
	switch family {
	case "PyPI":
		return pypiSeparators.ReplaceAllString(strings.ToLower(name), "-")
	case "NuGet", "Packagist", "npm":
		return strings.ToLower(name)
	}
	return name
}
