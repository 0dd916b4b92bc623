package scan

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"

	scalibr "github.com/google/osv-scalibr"
	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	javaarchive "github.com/google/osv-scalibr/extractor/filesystem/language/java/archive"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagejson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargoauditable"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/osrelease"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
	scalibrfs "github.com/google/osv-scalibr/fs"
	scalibrlog "github.com/google/osv-scalibr/log"
	"github.com/google/osv-scalibr/plugin"
	"github.com/google/osv-scalibr/purl"
)

// InventoryLibrary names the cataloguing library and its version.
const InventoryLibrary = "osv-scalibr v0.5.3"

// extractors are the osv-scalibr catalogers the inventory runs: the
// installed-package ones (what an image holds), not lockfile parsers.
var extractors = []func(*cpb.PluginConfig) (filesystem.Extractor, error){
	dpkg.New, apk.New, rpm.New,
	gobinary.New, javaarchive.New, wheelegg.New, packagejson.New, cargoauditable.New,
	newBinaryVersionExtractor, // Airlock's own: nginx, redis, python, node without a package manager
}

// Files an inventory reads besides what the extractors ask for: the OS
// release, and the package databases that say who owns which file.
var inventoryFiles = []string{
	"/etc/os-release", "/usr/lib/os-release", "/etc/lsb-release", "/etc/alpine-release", "/etc/debian_version",
	"/etc/passwd", "/etc/group", "/lib/apk/db/installed", "/var/lib/dpkg/status",
}

// inventory runs the extractors over an unpacked tree.
type inventory struct {
	exts []filesystem.Extractor
	mu   sync.Mutex
	// Copies of the package databases as each layer wrote them, to find the
	// layer that added each distro package (the database file itself is
	// rewritten by every layer that installs anything).
	dbs map[string][]dbCopy
}

type dbCopy struct {
	layer string
	index int
	data  []byte
}

var quietScalibr sync.Once

// debugLogger sends osv-scalibr's log lines to slog at debug level: per-file
// parse problems are not the user's business, a failed scan is reported as such.
type debugLogger struct{}

func (debugLogger) Errorf(f string, a ...any) { slog.Debug("osv-scalibr: " + fmt.Sprintf(f, a...)) }
func (debugLogger) Warnf(f string, a ...any)  { slog.Debug("osv-scalibr: " + fmt.Sprintf(f, a...)) }
func (debugLogger) Infof(f string, a ...any)  { slog.Debug("osv-scalibr: " + fmt.Sprintf(f, a...)) }
func (debugLogger) Debugf(f string, a ...any) { slog.Debug("osv-scalibr: " + fmt.Sprintf(f, a...)) }
func (debugLogger) Error(a ...any)            { slog.Debug("osv-scalibr: " + fmt.Sprint(a...)) }
func (debugLogger) Warn(a ...any)             { slog.Debug("osv-scalibr: " + fmt.Sprint(a...)) }
func (debugLogger) Info(a ...any)             { slog.Debug("osv-scalibr: " + fmt.Sprint(a...)) }
func (debugLogger) Debug(a ...any)            { slog.Debug("osv-scalibr: " + fmt.Sprint(a...)) }

func newInventory() (*inventory, error) {
	quietScalibr.Do(func() { scalibrlog.SetLogger(debugLogger{}) })
	inv := &inventory{dbs: map[string][]dbCopy{}}
	for _, f := range extractors {
		e, err := f(&cpb.PluginConfig{})
		if err != nil {
			return nil, err
		}
		inv.exts = append(inv.exts, e)
	}
	return inv, nil
}

type fileAPI struct{ f *File }

func (a fileAPI) Path() string               { return strings.TrimPrefix(a.f.Path, "/") }
func (a fileAPI) Stat() (fs.FileInfo, error) { return fileInfo(a), nil }

// Wanted says whether f must be on disk for the inventory.
func (inv *inventory) Wanted(f *File) bool {
	if f.Type == 0 {
		return false
	}
	for _, p := range inventoryFiles {
		if f.Path == p {
			return true
		}
	}
	if strings.HasPrefix(f.Path, "/var/lib/dpkg/info/") && strings.HasSuffix(f.Path, ".list") {
		return true
	}
	if !f.IsRegular() {
		// Symlinks are materialised so that paths resolve inside the tree.
		return f.Type == tar.TypeSymlink
	}
	api := fileAPI{f}
	for _, e := range inv.exts {
		if e.FileRequired(api) {
			return true
		}
	}
	return false
}

// Want implements FileSink: it keeps each layer's copy of the package databases.
func (inv *inventory) Want(f *File) bool {
	return f.Path == "/var/lib/dpkg/status" || f.Path == "/lib/apk/db/installed"
}

func (inv *inventory) Content(_ context.Context, f *File, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return err
	}
	inv.mu.Lock()
	inv.dbs[f.Path] = append(inv.dbs[f.Path], dbCopy{layer: f.Layer, index: f.Index, data: b})
	inv.mu.Unlock()
	return nil
}

// OSRelease reads the tree's os-release (symlinks resolved inside it).
func OSRelease(t *Tree) map[string]string {
	m, err := osrelease.GetOSRelease(t.FS().(scalibrfs.FS))
	if err != nil || len(m) == 0 {
		return map[string]string{}
	}
	return m
}

// run catalogues the tree and maps what it found to Packages.
func (inv *inventory) run(ctx context.Context, t *Tree, osr map[string]string) ([]Package, map[string]string, error) {
	cfg := &scalibr.ScanConfig{
		// A virtual root (no Path): extractors read only through the tree's
		// os.Root, which no symlink can leave.
		ScanRoots:    []*scalibrfs.ScanRoot{{FS: t.FS().(scalibrfs.FS)}},
		Capabilities: &plugin.Capabilities{OS: plugin.OSLinux, Network: plugin.NetworkOffline, DirectFS: false, RunningSystem: false},
	}
	for _, e := range inv.exts {
		cfg.Plugins = append(cfg.Plugins, e)
	}
	res := scalibr.New().Scan(ctx, cfg)
	if res.Status != nil && res.Status.Status == plugin.ScanStatusFailed {
		return nil, nil, fmt.Errorf("inventory: %s", res.Status.FailureReason)
	}
	owned := inv.owned(t)
	var out []Package
	for _, p := range res.Inventory.Packages {
		pk := inv.convert(t, osr, owned, p)
		if pk.Type == "binary" && pk.OwnedByDistro {
			continue // a distro package owns the file and names it already
		}
		out = append(out, pk)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Location < out[j].Location
	})
	return out, owned, nil
}

var typeOf = map[string]string{
	purl.TypeDebian: "deb", purl.TypeApk: "apk", purl.TypeRPM: "rpm", purl.TypeGolang: "go-module",
	purl.TypePyPi: "python", purl.TypeNPM: "npm", purl.TypeMaven: "java-archive", purl.TypeCargo: "rust-crate",
	purl.TypeGeneric: "binary",
}

func (inv *inventory) convert(t *Tree, osr map[string]string, owned map[string]string, p *extractor.Package) Package {
	loc := "/" + strings.TrimPrefix(p.Location.PathOrEmpty(), "/")
	out := Package{Name: p.Name, Version: p.Version, Ecosystem: p.Ecosystem().String(), Type: typeOf[p.PURLType], Location: loc}
	if out.Type == "" {
		out.Type = p.PURLType
	}
	// osv-scalibr names a Go binary's toolchain "go"; OSV's Go advisories
	// file the standard library as "stdlib".
	if out.Type == "go-module" && out.Name == "go" {
		out.Name, out.PURL = "stdlib", "pkg:golang/stdlib@"+out.Version
	}
	// A Java archive without Maven metadata has neither name nor version:
	// name it after its file so the inventory still shows it.
	if out.Type == "java-archive" && out.Name == "unknown" {
		out.Name = strings.TrimSuffix(path.Base(loc), path.Ext(loc))
		if out.Version == "unknown" {
			out.Version = ""
		}
	}
	if u := p.PURL(); u != nil {
		out.PURL = u.String()
	}
	// A Java archive nested in another is reported as outer.jar:inner.jar;
	// the file on disk is the outer one.
	file := loc
	if i := strings.Index(file, ".jar:"); i >= 0 {
		file = file[:i+4]
	}
	if f := lookup(t, file); f != nil {
		out.Layer = f.Layer
	}
	switch m := p.Metadata.(type) {
	case *dpkgmeta.Metadata:
		out.Source = m.SourceName
		if out.Source == "" {
			out.Source = m.PackageName
		}
		if l := inv.addedBy("/var/lib/dpkg/status", dpkgStanza(m.PackageName, p.Version)); l != "" && loc == "/var/lib/dpkg/status" {
			out.Layer = l
		}
		if strings.HasPrefix(out.Ecosystem, "Ubuntu") {
			out.Ecosystem = ubuntuEcosystem(osr)
		}
	case *apkmeta.Metadata:
		out.Source = m.OriginName
		if out.Source == "" {
			out.Source = m.PackageName
		}
		if l := inv.addedBy("/lib/apk/db/installed", apkStanza(m.PackageName, p.Version)); l != "" {
			out.Layer = l
		}
	case *rpmmeta.Metadata:
		out.Source = sourceRPMName(m.SourceRPM)
	}
	switch out.Type {
	case "deb", "apk", "rpm":
	default:
		if _, ok := owned[resolveOrSelf(t, file)]; ok {
			out.OwnedByDistro = true
		}
	}
	return out
}

// ubuntuEcosystem is the OSV ecosystem of an Ubuntu release: "Ubuntu:22.04"
// or, for LTS releases, "Ubuntu:22.04:LTS" as the advisories name them.
func ubuntuEcosystem(osr map[string]string) string {
	v := osr["VERSION_ID"]
	if v == "" {
		return "Ubuntu"
	}
	if strings.Contains(osr["VERSION"], "LTS") {
		return "Ubuntu:" + v + ":LTS"
	}
	return "Ubuntu:" + v
}

// sourceRPMName turns "openssl-3.0.7-27.el9.src.rpm" into "openssl".
func sourceRPMName(s string) string {
	s = strings.TrimSuffix(s, ".src.rpm")
	for i := 0; i < 2; i++ {
		if j := strings.LastIndex(s, "-"); j > 0 {
			s = s[:j]
		}
	}
	return s
}

func lookup(t *Tree, p string) *File {
	if f, ok := t.Files[p]; ok {
		return f
	}
	if rp, err := t.Resolve(p); err == nil {
		return t.Files[rp]
	}
	return nil
}

func resolveOrSelf(t *Tree, p string) string {
	if rp, err := t.Resolve(p); err == nil {
		return rp
	}
	return p
}

// dpkgStanza and apkStanza recognise one package's stanza in its database.
func dpkgStanza(name, version string) func(stanza []byte) bool {
	return stanzaHas("Package: "+name, "Version: "+version)
}

func apkStanza(name, version string) func(stanza []byte) bool {
	return stanzaHas("P:"+name, "V:"+version)
}

func stanzaHas(lines ...string) func(stanza []byte) bool {
	return func(s []byte) bool {
		s = append(append([]byte("\n"), s...), '\n')
		for _, l := range lines {
			if !bytes.Contains(s, []byte("\n"+l+"\n")) {
				return false
			}
		}
		return true
	}
}

// addedBy returns the first layer whose copy of the database at db holds a
// stanza accepted by match, "" if none does.
func (inv *inventory) addedBy(db string, match func([]byte) bool) string {
	copies := inv.dbs[db]
	sort.SliceStable(copies, func(i, j int) bool { return copies[i].index < copies[j].index })
	for _, c := range copies {
		if StanzasContain(c.data, match) {
			return c.layer
		}
	}
	return ""
}

// StanzasContain splits a dpkg or apk database into blank-line separated
// stanzas and reports whether match accepts one of them.
func StanzasContain(db []byte, match func([]byte) bool) bool {
	for len(db) > 0 {
		var stanza []byte
		if i := bytes.Index(db, []byte("\n\n")); i >= 0 {
			stanza, db = db[:i+1], db[i+2:]
		} else {
			stanza, db = db, nil
		}
		if len(stanza) > 0 && stanza[len(stanza)-1] != '\n' {
			stanza = append(stanza, '\n')
		}
		if match(stanza) {
			return true
		}
	}
	return false
}

// owned maps each file a distro package installed to that package: dpkg's
// info/*.list files and apk's installed database (F:/R: lines), with paths
// resolved through the tree's symlinks (usrmerge: /bin → /usr/bin).
func (inv *inventory) owned(t *Tree) map[string]string {
	out := map[string]string{}
	for p, f := range t.Files {
		if !strings.HasPrefix(p, "/var/lib/dpkg/info/") || !strings.HasSuffix(p, ".list") || !f.IsRegular() {
			continue
		}
		pkg := strings.TrimSuffix(path.Base(p), ".list")
		pkg, _, _ = strings.Cut(pkg, ":")
		b, err := t.ReadFile(p, 64<<20)
		if err != nil {
			continue
		}
		for _, file := range DpkgList(b) {
			out[resolveOrSelf(t, file)] = pkg
		}
	}
	if b, err := t.ReadFile("/lib/apk/db/installed", 256<<20); err == nil {
		for file, pkg := range ApkFiles(b) {
			out[resolveOrSelf(t, file)] = pkg
		}
	}
	return out
}

// DpkgList parses a dpkg info/<pkg>.list file: one absolute path a line.
func DpkgList(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "/") && l != "/." && len(l) > 1 {
			out = append(out, path.Clean(l))
		}
	}
	return out
}

// ApkFiles parses apk's installed database for file ownership: F: names a
// directory, the R: lines after it name files in it, P: the package.
func ApkFiles(b []byte) map[string]string {
	out := map[string]string{}
	pkg, dir := "", "/"
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "":
			pkg, dir = "", "/"
		case strings.HasPrefix(l, "P:"):
			pkg = l[2:]
		case strings.HasPrefix(l, "F:"):
			dir = path.Clean("/" + l[2:])
		case strings.HasPrefix(l, "R:") && pkg != "":
			out[path.Join(dir, path.Clean("/"+l[2:]))] = pkg
		}
	}
	return out
}
