package scan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	scalibrinv "github.com/google/osv-scalibr/inventory"
	"github.com/google/osv-scalibr/plugin"
	"github.com/google/osv-scalibr/purl"
)

// Well-known programs installed without a package manager: nginx, redis,
// CPython and Node.js built from source (or copied out of another image) and
// dropped into an image have no package database entry, so no cataloguer
// sees them. This extractor reads such an ELF file's strings and names the
// program and version from evidence the program compiles into itself (the
// Server header "nginx/1.22.1", Redis's build id, CPython's PY_VERSION next
// to its Py_GetVersion format, Node's "node.js/v20.20.2" user agent). The
// inventory drops what it finds in files a distro package owns: those are
// already reported, with the distro's version, by the package database.
//
// osv-scalibr v0.5.3 has no extractor for these (its ffa/unknownbinariesextr
// only hashes unknown executables; runtime/nodeversion and runtime/nvm read
// version files, not binaries), so this one is Airlock's own.

// BinaryVersionExtractor is the extractor's name in osv-scalibr's plugin
// list and in each package's Plugins.
const BinaryVersionExtractor = "airlock/binaryversion"

const (
	// defaultBinaryScanLimit bounds the bytes read from one candidate file:
	// the largest program here (node) is ~100 MiB.
	defaultBinaryScanLimit = 512 << 20
	// maxBinaryFile: larger files are not candidates at all.
	maxBinaryFile = 2 << 30
	// maxBinaryString bounds one NUL-terminated string; longer runs of
	// printable bytes are not evidence of anything here and are skipped.
	maxBinaryString = 512
	// maxBinaryCandidates bounds the distinct candidate strings a matcher
	// keeps, so that a file crafted to hold millions of them costs no memory.
	maxBinaryCandidates = 1024
)

// binaryProgram identifies one program from the strings of its file.
type binaryProgram struct {
	name string // package and purl name
	// file says whether a file of this name may hold the program.
	file func(base string) bool
	// newMatcher returns the per-file state that sees each string.
	newMatcher func(base string) binaryMatcher
}

type binaryMatcher interface {
	see(s []byte)
	// version is the identified version and the string that proves it,
	// "" when the evidence is missing or contradictory.
	version() (v, evidence string)
}

// binaryPrograms are the programs the extractor knows; adding one is adding
// an entry and its matcher.
var binaryPrograms = []binaryProgram{
	{name: "nginx", file: nameIs("nginx"), newMatcher: func(string) binaryMatcher { return &exactMatcher{re: nginxVersion, prefix: []byte("nginx/")} }},
	{name: "redis", file: nameIs("redis-server", "redis-sentinel", "redis-check-rdb", "redis-check-aof"), newMatcher: func(string) binaryMatcher { return &redisMatcher{versions: map[string]bool{}} }},
	{name: "python", file: isPythonFile, newMatcher: newPythonMatcher},
	{name: "node", file: nameIs("node", "nodejs"), newMatcher: func(string) binaryMatcher {
		return &nodeMatcher{ua: exactMatcher{re: nodeUserAgent, prefix: []byte("node.js/v")}, release: exactMatcher{re: nodeRelease}}
	}},
}

func nameIs(names ...string) func(string) bool {
	return func(base string) bool {
		for _, n := range names {
			if base == n {
				return true
			}
		}
		return false
	}
}

// exactMatcher takes the version from a string that is all of re (first
// submatch) and requires every such string to agree.
type exactMatcher struct {
	re       *regexp.Regexp
	prefix   []byte // every match starts with it (a cheap test first)
	v, ev    string
	conflict bool
}

func (m *exactMatcher) see(s []byte) {
	if !bytes.HasPrefix(s, m.prefix) {
		return
	}
	sub := m.re.FindSubmatch(s)
	if sub == nil {
		return
	}
	v := string(sub[1])
	switch {
	case m.v == "":
		m.v, m.ev = v, string(s)
	case m.v != v:
		m.conflict = true
	}
}

func (m *exactMatcher) version() (string, string) {
	if m.conflict {
		return "", ""
	}
	return m.v, m.ev
}

// nginx compiles NGINX_VER ("nginx/" NGINX_VERSION) in as a string of its
// own: the Server header and error pages.
var nginxVersion = regexp.MustCompile(`^nginx/(\d+\.\d+\.\d+)$`)

// redisMatcher: redis-server is recognised by its start-up log format
// ("Redis server v=%s sha=%s…"); the version is the REDIS_VERSION string
// that also starts the build id string (REDIS_VERSION REDIS_BUILD_ID
// REDIS_GIT_DIRTY REDIS_GIT_SHA1, hashed at start-up), which tells it apart
// from the many other x.y.z strings (command histories) in the binary.
type redisMatcher struct {
	anchor   bool
	versions map[string]bool
	buildIDs []string
}

var (
	redisAnchor     = []byte("Redis server v=%s sha=%s:%d")
	semverOnly      = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	redisBuildIDish = regexp.MustCompile(`\d+\.\d+\.\d+[0-9A-Za-z._-]{8,}$`)
)

func (m *redisMatcher) see(s []byte) {
	if bytes.HasPrefix(s, redisAnchor) {
		m.anchor = true
		return
	}
	if bytes.Count(s, []byte(".")) < 2 {
		return // neither a version nor a build id
	}
	switch {
	case isDigit(s[0]) && isDigit(s[len(s)-1]) && len(m.versions) < maxBinaryCandidates && semverOnly.Match(s):
		m.versions[string(s)] = true
	case len(m.buildIDs) < 64 && redisBuildIDish.Match(s):
		m.buildIDs = append(m.buildIDs, string(s))
	}
}

func (m *redisMatcher) version() (string, string) {
	if !m.anchor {
		return "", ""
	}
	best, ev := "", ""
	for v := range m.versions {
		for _, id := range m.buildIDs {
			i := strings.Index(id, v)
			// The version must start the build id (after at most one stray
			// byte of whatever precedes it) and leave ≥ 8 characters of id.
			if i < 0 || i > 1 || len(id)-i-len(v) < 8 || (i == 1 && isVersionByte(id[0])) {
				continue
			}
			if len(v) > len(best) || len(v) == len(best) && v > best {
				best, ev = v, id
			}
		}
	}
	return best, ev
}

func isVersionByte(b byte) bool { return b == '.' || isDigit(b) }

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// pythonMatcher: CPython is recognised by Py_GetVersion's format string
// "%.80s (%.80s) %.80s"; its minor version by the extension-module ABI tag
// compiled in ("cpython-311"); the full version by PY_VERSION, a string of
// its own or — where the linker merged it into a longer string that ends
// with the same bytes, as in "/opt/python/3.11.7" — the tail of one.
type pythonMatcher struct {
	anchor bool
	abi    map[string]bool // "3.11"
	minor  string          // from the file name, "" if it has none
	exact  map[string]bool
	tails  map[string]int
}

var (
	pythonAnchor  = []byte("%.80s (%.80s) %.80s")
	pythonABI     = regexp.MustCompile(`cpython-3(\d{1,2})(?:$|[-.a-z])`)
	pythonVersion = regexp.MustCompile(`(?:^|[^0-9A-Za-z.])(3\.\d{1,2}\.\d{1,3}(?:(?:a|b|rc)\d{1,2})?\+?)$`)
	pythonName    = regexp.MustCompile(`^(?:python(3(?:\.\d{1,2})?)?|libpython(3\.\d{1,2})[a-z]*\.so(?:\.\d+)*)$`)
)

func isPythonFile(base string) bool { return pythonName.MatchString(base) }

func newPythonMatcher(base string) binaryMatcher {
	m := &pythonMatcher{abi: map[string]bool{}, exact: map[string]bool{}, tails: map[string]int{}}
	if sub := pythonName.FindStringSubmatch(base); sub != nil {
		for _, s := range sub[1:] {
			if strings.Contains(s, ".") {
				m.minor = s
			}
		}
	}
	return m
}

func (m *pythonMatcher) see(s []byte) {
	if bytes.HasPrefix(s, pythonAnchor) {
		m.anchor = true
		return
	}
	if bytes.Contains(s, []byte("cpython-3")) {
		if sub := pythonABI.FindSubmatch(s); sub != nil && len(m.abi) < maxBinaryCandidates {
			m.abi["3."+string(sub[1])] = true
		}
	}
	if last := s[len(s)-1]; !isDigit(last) && last != '+' || !bytes.Contains(s, []byte("3.")) {
		return
	}
	if sub := pythonVersion.FindSubmatch(s); sub != nil {
		v := string(sub[1])
		switch {
		case len(v) == len(s) && len(m.exact) < maxBinaryCandidates:
			m.exact[v] = true
		case len(v) < len(s) && len(m.tails) < maxBinaryCandidates:
			m.tails[v]++
		}
	}
}

func (m *pythonMatcher) version() (string, string) {
	if !m.anchor {
		return "", ""
	}
	minor := m.minor
	if minor == "" {
		if len(m.abi) != 1 {
			return "", "" // no or several ABI tags: not one CPython
		}
		for a := range m.abi {
			minor = a
		}
	} else if len(m.abi) > 0 && !m.abi[minor] {
		return "", "" // the name says one minor version, the binary another
	}
	pick := func(set map[string]bool) string {
		var found []string
		for v := range set {
			if strings.HasPrefix(v, minor+".") {
				found = append(found, v)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		return ""
	}
	if v := pick(m.exact); v != "" {
		return v, v
	}
	tails := map[string]bool{}
	for v := range m.tails {
		tails[v] = true
	}
	if v := pick(tails); v != "" {
		return v, v
	}
	return "", ""
}

// nodeMatcher: Node.js compiles its version into the user agent of its
// HTTP client ("node.js/v20.20.2") and, in release builds, into
// process.release's source URL (".../release/v20.20.2/node-v20.20.2.tar.gz").
type nodeMatcher struct{ ua, release exactMatcher }

var (
	nodeUserAgent = regexp.MustCompile(`^node\.js/v(\d+\.\d+\.\d+)$`)
	nodeRelease   = regexp.MustCompile(`/release/v(\d+\.\d+\.\d+)/node-v(\d+\.\d+\.\d+)\.tar\.gz$`)
)

func (m *nodeMatcher) see(s []byte) {
	m.ua.see(s)
	if !bytes.Contains(s, []byte("/release/v")) {
		return
	}
	if sub := nodeRelease.FindSubmatch(s); sub != nil && string(sub[1]) == string(sub[2]) {
		m.release.see(s)
	}
}

func (m *nodeMatcher) version() (string, string) {
	ua, uaEv := m.ua.version()
	rel, relEv := m.release.version()
	switch {
	case m.ua.conflict || m.release.conflict:
		return "", ""
	case ua != "" && rel != "" && ua != rel:
		return "", ""
	case ua != "":
		return ua, uaEv
	}
	return rel, relEv
}

// BinaryIdentity is a program identified in a file.
type BinaryIdentity struct {
	Name     string // "nginx", "redis", "python", "node"
	Version  string
	Evidence string // the string in the file that proves the version
}

// ErrNotELF is returned for a candidate file that is not an ELF object.
var ErrNotELF = errors.New("not an ELF file")

// IdentifyBinary reads an ELF file named base (its file name in the image)
// from r, at most limit bytes of it, and names the well-known program it is.
// It returns nil when the name is not one of a known program's or the file
// holds no consistent evidence; ErrNotELF for a file that is not ELF; a read
// error otherwise.
func IdentifyBinary(ctx context.Context, base string, r io.Reader, limit int64) (*BinaryIdentity, error) {
	var matchers []binaryMatcher
	var names []string
	for _, p := range binaryPrograms {
		if p.file(base) {
			matchers = append(matchers, p.newMatcher(base))
			names = append(names, p.name)
		}
	}
	if len(matchers) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = defaultBinaryScanLimit
	}
	br := bufio.NewReaderSize(io.LimitReader(r, limit), 64<<10)
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrNotELF
		}
		return nil, err
	}
	if string(magic[:]) != "\x7fELF" {
		return nil, ErrNotELF
	}
	err := binaryStrings(ctx, br, func(s []byte) {
		for _, m := range matchers {
			m.see(s)
		}
	})
	if err != nil {
		return nil, err
	}
	for i, m := range matchers {
		if v, ev := m.version(); v != "" {
			return &BinaryIdentity{Name: names[i], Version: v, Evidence: ev}, nil
		}
	}
	return nil, nil
}

// binaryStrings calls fn with every NUL-terminated run of 4 to
// maxBinaryString printable bytes (ASCII, tab and line ends) in r, as C
// string literals are stored; fn must not keep the slice.
func binaryStrings(ctx context.Context, r *bufio.Reader, fn func([]byte)) error {
	buf := make([]byte, 0, maxBinaryString)
	overlong := false
	chunk := make([]byte, 64<<10)
	for n := 0; ; n++ {
		if n%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		k, err := r.Read(chunk)
		for _, b := range chunk[:k] {
			switch stringByte[b] {
			case byteText:
				if len(buf) < maxBinaryString {
					buf = append(buf, b)
				} else {
					overlong = true
				}
			case byteNUL:
				if len(buf) >= 4 && !overlong {
					fn(buf)
				}
				buf, overlong = buf[:0], false
			default:
				if len(buf) > 0 || overlong {
					buf, overlong = buf[:0], false
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

const (
	byteOther = iota
	byteText
	byteNUL
)

// stringByte classes bytes for binaryStrings: printable ASCII, tab and line
// ends are text.
var stringByte = func() (t [256]uint8) {
	for b := 0x20; b < 0x7f; b++ {
		t[b] = byteText
	}
	t['\t'], t['\n'], t['\r'] = byteText, byteText, byteText
	t[0] = byteNUL
	return t
}()

// binaryVersionExtractor is the osv-scalibr plugin around IdentifyBinary.
type binaryVersionExtractor struct{ limit int64 }

func newBinaryVersionExtractor(*cpb.PluginConfig) (filesystem.Extractor, error) {
	return &binaryVersionExtractor{limit: defaultBinaryScanLimit}, nil
}

func (e *binaryVersionExtractor) Name() string { return BinaryVersionExtractor }
func (e *binaryVersionExtractor) Version() int { return 0 }
func (e *binaryVersionExtractor) Requirements() *plugin.Capabilities {
	return &plugin.Capabilities{OS: plugin.OSLinux}
}

// FileRequired wants regular files under a known program's names, of a
// size a program can have.
func (e *binaryVersionExtractor) FileRequired(api filesystem.FileAPI) bool {
	base := path.Base(api.Path())
	known := false
	for _, p := range binaryPrograms {
		known = known || p.file(base)
	}
	if !known {
		return false
	}
	st, err := api.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	return st.Size() >= 64 && st.Size() <= maxBinaryFile
}

func (e *binaryVersionExtractor) Extract(ctx context.Context, in *filesystem.ScanInput) (scalibrinv.Inventory, error) {
	id, err := IdentifyBinary(ctx, path.Base(in.Path), in.Reader, e.limit)
	if errors.Is(err, ErrNotELF) || id == nil && err == nil {
		return scalibrinv.Inventory{}, nil
	}
	if err != nil {
		return scalibrinv.Inventory{}, fmt.Errorf("%s: reading %s: %w", BinaryVersionExtractor, in.Path, err)
	}
	return scalibrinv.Inventory{Packages: []*extractor.Package{{
		Name:     id.Name,
		Version:  id.Version,
		PURLType: purl.TypeGeneric,
		Location: extractor.LocationFromPath(in.Path),
	}}}, nil
}
