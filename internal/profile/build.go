package profile

import (
	"encoding/json"
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/sandbox"
)

// Build turns a sandboxed run's events into the image's profile: what ran
// (with distinct argv and the executables that started it), file activity
// with volatile paths collapsed into patterns, DNS names, destinations
// joined with the names they were resolved from and classified by their
// first bytes, listening ports, probes, exit, resources and the verdict
// notes. Every list is sorted, so the same behaviour gives the same document.
func Build(res *sandbox.Result, img Image, run Run) Profile {
	p := Profile{SchemaVersion: SchemaVersion, Image: img, Run: run}
	if res == nil {
		res = &sandbox.Result{}
	}
	if p.Run.Mode == "" {
		p.Run.Mode = res.Mode
	}
	b := builder{
		exe:     map[int]string{},
		execs:   map[string]*execAcc{},
		files:   map[string]map[string]*Path{},
		dns:     map[string]*DNSQuery{},
		names:   map[string]string{},
		dests:   map[string]*Destination{},
		connect: map[string]*Destination{},
		binds:   map[int][]sandbox.Event{},
		listen:  map[string]Listen{},
		denied:  map[string]string{},
		pids:    map[int]bool{},
	}
	// DNS answers and the sinkhole's own record name the addresses first,
	// so a connection is joined with its name whatever the event order.
	for _, e := range res.Events {
		if (e.Kind == sandbox.EventDNS || e.Kind == sandbox.EventSinkhole) && e.Name != "" && e.Addr != "" {
			if _, ok := b.names[e.Addr]; !ok {
				b.names[e.Addr] = strings.ToLower(strings.TrimSuffix(e.Name, "."))
			}
		}
	}
	for _, e := range res.Events {
		b.add(e)
	}
	p.Executables = b.executables()
	p.Files = Files{
		Read: b.paths("read"), Written: b.paths("written"), Created: b.paths("created"),
		Deleted: b.paths("deleted"), Chmod: b.paths("chmod"), Missing: b.paths("missing"),
	}
	p.Network = Network{DNS: b.dnsQueries(), Destinations: b.destinations(), Listening: b.listening()}
	p.Probes = []Probe{}
	for _, pr := range res.Probes {
		p.Probes = append(p.Probes, Probe{Kind: pr.Kind, Target: pr.Target, OK: pr.OK, Status: pr.Status,
			Output: printable(pr.Output, 256), Error: pr.Error})
	}
	sort.SliceStable(p.Probes, func(i, j int) bool {
		if p.Probes[i].Kind != p.Probes[j].Kind {
			return p.Probes[i].Kind < p.Probes[j].Kind
		}
		return p.Probes[i].Target < p.Probes[j].Target
	})
	p.Exit = Exit{Code: res.Exit.Code, Signal: res.Exit.Signal, TimedOut: res.Exit.TimedOut, OOM: res.Exit.OOM}
	p.Resources = Resources{CPUSeconds: res.Resources.CPUSeconds, CPUBusySeconds: res.Resources.CPUBusySeconds,
		PeakMemoryBytes: res.Resources.PeakMemoryBytes, PeakPids: res.Resources.PeakPids}
	p.Stats = Stats{Events: len(res.Events), Processes: len(b.pids)}
	p.Notes = notes(&p, res, b.denied)
	p.Notes = sortNotes(append(p.Notes, bound(&p)...))
	// Long names in every entry can still add up: halve the lists until
	// the document fits its budget.
	for i := 0; i < 16; i++ {
		b, err := json.Marshal(p)
		if err != nil || len(b) <= documentBudget {
			break
		}
		halve(&p)
		if i == 0 {
			p.Notes = sortNotes(append(p.Notes, Note{Code: NoteTruncated, Severity: SeverityWarning,
				Message: fmt.Sprintf("the profile was larger than %d MiB: its lists were cut", documentBudget>>20)}))
		}
	}
	return p
}

// documentBudget is the size Build keeps a profile under (well below
// MaxDocument, so evidence that embeds it parses too).
const documentBudget = 8 << 20

// maxArgs bounds the arguments kept of one argv.
const maxArgs = 64

func halve(p *Profile) {
	h := func(n int) int { return (n + 1) / 2 }
	p.Executables = p.Executables[:h(len(p.Executables))]
	for i := range p.Executables {
		p.Executables[i].Argv = p.Executables[i].Argv[:h(len(p.Executables[i].Argv))]
	}
	for _, l := range []*[]Path{&p.Files.Read, &p.Files.Written, &p.Files.Created, &p.Files.Deleted, &p.Files.Chmod, &p.Files.Missing} {
		*l = (*l)[:h(len(*l))]
	}
	p.Network.DNS = p.Network.DNS[:h(len(p.Network.DNS))]
	p.Network.Destinations = p.Network.Destinations[:h(len(p.Network.Destinations))]
	p.Network.Listening = p.Network.Listening[:h(len(p.Network.Listening))]
}

// Bounds on one document: a sample that runs thousands of distinct
// commands or creates a million files must not make a profile too large
// to store, diff or Parse. What is dropped is said in a note.
const (
	MaxListEntries = 5000 // per list (executables, each file list, DNS, destinations, listening)
	MaxArgv        = 32   // distinct argv kept per executable
)

// NoteTruncated says a list was cut at MaxListEntries or MaxArgv.
const NoteTruncated = "truncated"

func bound(p *Profile) []Note {
	var out []Note
	cut := func(what string, n int) {
		if n > 0 {
			out = append(out, Note{Code: NoteTruncated, Severity: SeverityWarning,
				Message: fmt.Sprintf("%s: %d more entries than a profile keeps were dropped", what, n)})
		}
	}
	argv := 0
	for i := range p.Executables {
		if e := &p.Executables[i]; len(e.Argv) > MaxArgv {
			argv += len(e.Argv) - MaxArgv
			e.Argv = e.Argv[:MaxArgv]
		}
	}
	cut("argv of executables", argv)
	if n := len(p.Executables) - MaxListEntries; n > 0 {
		p.Executables = p.Executables[:MaxListEntries]
		cut("executables", n)
	}
	for _, l := range []struct {
		name string
		list *[]Path
	}{{"files read", &p.Files.Read}, {"files written", &p.Files.Written}, {"files created", &p.Files.Created},
		{"files deleted", &p.Files.Deleted}, {"files chmod", &p.Files.Chmod}, {"files missing", &p.Files.Missing}} {
		if n := len(*l.list) - MaxListEntries; n > 0 {
			*l.list = (*l.list)[:MaxListEntries]
			cut(l.name, n)
		}
	}
	if n := len(p.Network.DNS) - MaxListEntries; n > 0 {
		p.Network.DNS = p.Network.DNS[:MaxListEntries]
		cut("DNS names", n)
	}
	if n := len(p.Network.Destinations) - MaxListEntries; n > 0 {
		p.Network.Destinations = p.Network.Destinations[:MaxListEntries]
		cut("destinations", n)
	}
	if n := len(p.Network.Listening) - MaxListEntries; n > 0 {
		p.Network.Listening = p.Network.Listening[:MaxListEntries]
		cut("listening ports", n)
	}
	return out
}

type execAcc struct {
	argv    map[string][]string
	parents map[string]bool
	count   int
}

type builder struct {
	exe     map[int]string // pid → the executable it runs now
	execs   map[string]*execAcc
	files   map[string]map[string]*Path // list → path → entry
	dns     map[string]*DNSQuery
	names   map[string]string       // address → DNS name
	dests   map[string]*Destination // sinkholed connections
	connect map[string]*Destination // connect(2) calls, for those the sinkhole never saw
	binds   map[int][]sandbox.Event
	listen  map[string]Listen
	denied  map[string]string // syscall → errno
	pids    map[int]bool
}

func (b *builder) add(e sandbox.Event) {
	if e.PID > 0 {
		b.pids[e.PID] = true
		// A forked child runs its parent's executable until it execs.
		if _, ok := b.exe[e.PID]; !ok && e.PPID > 0 {
			if pe, ok := b.exe[e.PPID]; ok {
				b.exe[e.PID] = pe
			}
		}
	}
	switch e.Kind {
	case sandbox.EventExec:
		p := cleanPath(e.Path)
		if p == "" {
			return
		}
		if e.Missing {
			b.file("missing", p, 0)
			return
		}
		acc := b.execs[p]
		if acc == nil {
			acc = &execAcc{argv: map[string][]string{}, parents: map[string]bool{}}
			b.execs[p] = acc
		}
		acc.count++
		argv := make([]string, 0, min(len(e.Argv), maxArgs))
		for i, a := range e.Argv {
			if i == maxArgs {
				argv = append(argv, fmt.Sprintf("… %d more arguments", len(e.Argv)-maxArgs))
				break
			}
			argv = append(argv, printable(a, 256))
		}
		acc.argv[strings.Join(argv, "\x00")] = argv
		parent := b.exe[e.PPID]
		if parent == "" {
			parent = b.exe[e.PID] // an exec replacing the process's own image
		}
		if parent != "" {
			acc.parents[parent] = true
		}
		if e.PID > 0 {
			b.exe[e.PID] = p
		}
	case sandbox.EventOpen:
		if e.Missing {
			b.file("missing", e.Path, 0)
		} else {
			b.file("read", e.Path, 0)
		}
	case sandbox.EventWrite:
		b.file("written", e.Path, 0)
	case sandbox.EventCreate, sandbox.EventMkdir, sandbox.EventSymlink:
		b.file("created", e.Path, e.Mode)
	case sandbox.EventUnlink:
		if !e.Missing { // rm -f of nothing deletes nothing
			b.file("deleted", e.Path, 0)
		}
	case sandbox.EventChmod:
		if !e.Missing {
			b.file("chmod", e.Path, e.Mode)
		}
	case sandbox.EventRename:
		if e.Missing {
			return
		}
		b.file("deleted", e.Path, 0)
		if e.Target != "" {
			b.file("created", e.Target, 0)
		}
	case sandbox.EventDNS:
		name := strings.ToLower(strings.TrimSuffix(e.Name, "."))
		if name == "" {
			return
		}
		name = printable(name, 253)
		qt := e.QType
		if qt == "" {
			qt = "A"
		}
		k := name + " " + qt
		if q := b.dns[k]; q != nil {
			q.Count++
		} else {
			b.dns[k] = &DNSQuery{Name: name, Type: qt, Count: 1}
		}
	case sandbox.EventSinkhole:
		proto := normProto(e.Proto)
		protocol, detail := Classify(e.Port, e.Data)
		name := b.nameOf(e.Addr, e.Name)
		k := strings.Join([]string{proto, e.Addr, strconv.Itoa(e.Port), protocol, detail}, " ")
		if d := b.dests[k]; d != nil {
			d.Count++
			return
		}
		fb := ""
		if protocol != ProtoTLS { // a ClientHello is mostly random bytes
			fb = printable(string(e.Data), 128)
		}
		b.dests[k] = &Destination{Proto: proto, Name: name, IP: e.Addr, Port: e.Port, Protocol: protocol,
			Detail: detail, FirstBytes: fb, Count: 1}
	case sandbox.EventConnect:
		proto := normProto(e.Proto)
		k := strings.Join([]string{proto, e.Addr, strconv.Itoa(e.Port)}, " ")
		if d := b.connect[k]; d != nil {
			d.Count++
			return
		}
		protocol := ProtoNone
		if e.Port == 53 {
			protocol = ProtoDNS
		}
		b.connect[k] = &Destination{Proto: proto, Name: b.nameOf(e.Addr, ""), IP: printable(e.Addr, 256), Port: e.Port, Protocol: protocol, Count: 1}
	case sandbox.EventBind:
		b.binds[e.PID] = append(b.binds[e.PID], e)
		if p := normProto(e.Proto); (p == "udp") && e.Port > 0 {
			b.addListen(Listen{Proto: p, Addr: e.Addr, Port: e.Port})
		}
	case sandbox.EventListen:
		l := Listen{Proto: normProto(e.Proto), Addr: e.Addr, Port: e.Port}
		if l.Port == 0 {
			// The tracer may not know the address of the listening socket;
			// it is the one the process bound last.
			if bs := b.binds[e.PID]; len(bs) > 0 {
				last := bs[len(bs)-1]
				l.Addr, l.Port = last.Addr, last.Port
				if l.Proto == "" {
					l.Proto = normProto(last.Proto)
				}
			}
		}
		if l.Proto == "" {
			l.Proto = "tcp"
		}
		b.addListen(l)
	case sandbox.EventDenied:
		if e.Name != "" {
			b.denied[printable(e.Name, 64)] = printable(e.Target, 32)
		}
	}
}

func (b *builder) addListen(l Listen) {
	if l.Addr == "" {
		l.Addr = "0.0.0.0"
	}
	b.listen[l.Proto+" "+l.Addr+" "+strconv.Itoa(l.Port)] = l
}

func (b *builder) nameOf(addr, name string) string {
	if name != "" {
		return printable(strings.ToLower(strings.TrimSuffix(name, ".")), 253)
	}
	return b.names[addr]
}

// normProto folds tcp6/udp6 into tcp/udp: the address says which family.
func normProto(p string) string {
	switch p {
	case "tcp", "tcp4", "tcp6", "":
		return "tcp"
	case "udp", "udp4", "udp6":
		return "udp"
	}
	return printable(p, 16)
}

func (b *builder) file(list, p string, mode uint32) {
	p = cleanPath(p)
	if p == "" {
		return
	}
	pat, isPat := Collapse(p)
	m := b.files[list]
	if m == nil {
		m = map[string]*Path{}
		b.files[list] = m
	}
	ms := ""
	if mode != 0 && (list == "created" || list == "chmod") {
		ms = fmt.Sprintf("%04o", mode&0o7777)
	}
	k := pat + "\x00" + ms
	if e := m[k]; e != nil {
		e.Count++
		return
	}
	m[k] = &Path{Path: pat, Pattern: isPat, Mode: ms, Count: 1}
}

func (b *builder) paths(list string) []Path {
	out := []Path{}
	for _, p := range b.files[list] {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Mode < out[j].Mode
	})
	return out
}

func (b *builder) executables() []Exec {
	out := []Exec{}
	for p, acc := range b.execs {
		e := Exec{Path: p, Argv: [][]string{}, Parents: []string{}, Count: acc.count}
		keys := make([]string, 0, len(acc.argv))
		for k := range acc.argv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e.Argv = append(e.Argv, acc.argv[k])
		}
		for par := range acc.parents {
			e.Parents = append(e.Parents, par)
		}
		sort.Strings(e.Parents)
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (b *builder) dnsQueries() []DNSQuery {
	out := []DNSQuery{}
	for _, q := range b.dns {
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Type < out[j].Type
	})
	return out
}

func (b *builder) destinations() []Destination {
	out := []Destination{}
	seen := map[string]bool{}
	for _, d := range b.dests {
		out = append(out, *d)
		seen[d.Proto+" "+d.IP+" "+strconv.Itoa(d.Port)] = true
	}
	// A connect(2) the sinkhole also saw is that connection; one it never
	// saw (refused, a unix socket, a UDP send) stands on its own, except a
	// query to the sandbox's DNS responder: it is in network.dns.
	for k, d := range b.connect {
		if d.Port == 53 && len(b.dns) > 0 {
			continue
		}
		if !seen[k] {
			out = append(out, *d)
		}
	}
	sortDestinations(out)
	return out
}

func sortDestinations(out []Destination) {
	sort.Slice(out, func(i, j int) bool {
		a, c := out[i], out[j]
		if ka, kc := a.Key(), c.Key(); ka != kc {
			return ka < kc
		}
		if a.IP != c.IP {
			return a.IP < c.IP
		}
		return a.Detail < c.Detail
	})
}

func (b *builder) listening() []Listen {
	out := []Listen{}
	for _, l := range b.listen {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		if out[i].Proto != out[j].Proto {
			return out[i].Proto < out[j].Proto
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// Key names a destination the same way across runs: by the name it was
// resolved from when it has one (the sinkhole's addresses are handed out
// per run), else by its address.
func (d Destination) Key() string {
	host := d.Name
	if host == "" {
		host = d.IP
	}
	if d.Proto == "unix" {
		return "unix " + host
	}
	return d.Proto + " " + net.JoinHostPort(host, strconv.Itoa(d.Port)) + " " + d.Protocol
}

// cleanPath makes an event's path absolute and clean; "" for none. The
// sandbox reports paths inside its root; a relative one is taken from /.
func cleanPath(p string) string {
	if p == "" {
		return ""
	}
	p = printable(p, 4096)
	return path.Clean("/" + p)
}

// volatileTrees hold names made up per run.
var volatileTrees = []string{"/tmp/", "/var/tmp/", "/dev/shm/", "/run/", "/var/run/"}

// Collapse turns a path whose parts change from run to run into a pattern
// with "*" in their place: process ids under /proc, and random-looking
// names (mkstemp's, go-build's, a UUID) under the temporary trees. ok is
// true when something was collapsed.
func Collapse(p string) (string, bool) {
	parts := strings.Split(p, "/")
	changed := false
	if strings.HasPrefix(p, "/proc/") {
		for i := 2; i < len(parts); i++ {
			if allDigits(parts[i]) && (i == 2 || parts[i-1] == "task") {
				parts[i] = "*"
				changed = true
			}
		}
		return strings.Join(parts, "/"), changed
	}
	volatile := false
	for _, t := range volatileTrees {
		if strings.HasPrefix(p, t) {
			volatile = true
		}
	}
	if !volatile {
		return p, false
	}
	for i, part := range parts {
		if c, ok := collapseName(part); ok {
			parts[i] = c
			changed = true
		}
	}
	return strings.Join(parts, "/"), changed
}

// collapseName replaces the random-looking runs of one name ("tmp.Xa81kQ",
// "go-build2203", a UUID) with "*".
func collapseName(name string) (string, bool) {
	if uuidLike(name) {
		return "*", true
	}
	var out strings.Builder
	changed := false
	start := 0
	flush := func(end int) {
		tok, ok := collapseToken(name[start:end])
		out.WriteString(tok)
		changed = changed || ok
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '.' || c == '-' || c == '_' {
			flush(i)
			out.WriteByte(c)
			start = i + 1
		}
	}
	flush(len(name))
	return out.String(), changed
}

// collapseToken: a number of 4 digits or more is "*"; a word followed by
// one keeps the word ("build2203" → "build*"); 6 or more letters and
// digits mixing both (mkstemp's XXXXXX, hex ids) are "*".
func collapseToken(t string) (string, bool) {
	if len(t) >= 4 && allDigits(t) {
		return "*", true
	}
	i := len(t)
	for i > 0 && t[i-1] >= '0' && t[i-1] <= '9' {
		i--
	}
	if len(t)-i >= 4 && allLetters(t[:i]) {
		return t[:i] + "*", true
	}
	if randomToken(t) {
		return "*", true
	}
	return t, false
}

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return s != ""
}

// uuidLike matches 8-4-4-4-12 hex digits.
func uuidLike(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// randomToken: 6 or more letters and digits mixing both, or upper and
// lower case in a way words do not.
func randomToken(t string) bool {
	if len(t) < 6 {
		return false
	}
	digits, letters, upper, lower := 0, 0, 0, 0
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z':
			letters++
			lower++
		case c >= 'A' && c <= 'Z':
			letters++
			upper++
		default:
			return false
		}
	}
	return digits > 0 && letters > 0 || upper > 0 && lower > 0 && upper*3 >= len(t)/2
}
