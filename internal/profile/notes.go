package profile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/scan/rules"
)

// Note codes: stable identifiers that policies match on.
const (
	NoteStratumLogin   = "stratum-login"     // a Stratum/XMRig login was sent
	NoteMinerDomain    = "miner-pool-domain" // a known mining pool's name was resolved or contacted
	NoteMinerPort      = "miner-pool-port"   // a connection to a port mining pools serve on
	NoteCPUPegged      = "cpu-pegged"
	NoteSensitiveWrite = "sensitive-write" // passwd, shadow, cron, authorized_keys, ld.so.preload…
	NoteExecFromTemp   = "exec-from-temp"  // an executable run from /tmp, /var/tmp or /dev/shm
	NoteDeniedSyscall  = "denied-syscall"  // mount, ptrace, … refused by the sandbox
	NotePidsLimit      = "pids-limit"
	NoteMemoryLimit    = "memory-limit"
	NoteOOM            = "oom-killed"
	NoteTimedOut       = "ran-until-limit" // still running at the time limit: normal for a server
	NoteSandbox        = "sandbox"         // the sandbox's own remark
)

// Severities of notes.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// measuredNotes have messages with measured numbers; Normalize replaces
// them with a fixed text.
var measuredNotes = map[string]string{
	NoteCPUPegged: "CPU pegged near its limit for most of the run",
}

// miners are Falco's pool ports and host names, shipped with the scanner
// (internal/scan/rules/miners, Apache-2.0, The Falco Authors; see its NOTICE.md).
var miners = sync.OnceValues(func() (minerIndicators, error) {
	m, err := rules.Miners()
	if err != nil {
		return minerIndicators{}, err
	}
	ind := minerIndicators{ports: map[int]bool{}, domains: map[string]bool{}}
	for _, p := range m.Ports {
		if !servicePorts[p] {
			ind.ports[p] = true
		}
	}
	for _, l := range [][]string{m.Domains, m.HTTPSDomains, m.HTTPDomains} {
		for _, d := range l {
			ind.domains[strings.ToLower(d)] = true
		}
	}
	return ind, nil
})

// servicePorts are in Falco's miner port list only because some pools also
// serve there; alone they say nothing (SMTP, HTTP alternates, proxies).
var servicePorts = map[int]bool{25: true, 8000: true, 8001: true, 8008: true, 8080: true, 8118: true, 8888: true, 9999: true}

type minerIndicators struct {
	ports   map[int]bool
	domains map[string]bool
}

// pool reports whether name is a known pool host or under one.
func (m minerIndicators) pool(name string) bool {
	for n := name; n != ""; {
		if m.domains[n] {
			return true
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			break
		}
		n = n[i+1:]
	}
	return false
}

// sensitivePaths are files whose change persists access or hijacks every
// process; prefixes end in "/".
var sensitivePaths = []struct {
	path     string
	severity string
}{
	{"/etc/ld.so.preload", SeverityCritical},
	{"/etc/crontab", SeverityCritical},
	{"/etc/cron.d/", SeverityCritical},
	{"/etc/cron.hourly/", SeverityCritical},
	{"/etc/cron.daily/", SeverityCritical},
	{"/etc/cron.weekly/", SeverityCritical},
	{"/etc/cron.monthly/", SeverityCritical},
	{"/var/spool/cron/", SeverityCritical},
	{"/etc/shadow", SeverityCritical},
	{"/etc/gshadow", SeverityCritical},
	{"/etc/sudoers", SeverityCritical},
	{"/etc/sudoers.d/", SeverityCritical},
	{"/etc/passwd", SeverityWarning},
	{"/etc/group", SeverityWarning},
	{"/etc/profile.d/", SeverityWarning},
	{"/etc/systemd/system/", SeverityWarning},
}

func sensitive(p string) (string, bool) {
	if strings.HasSuffix(p, "/.ssh/authorized_keys") || strings.HasSuffix(p, "/.ssh/authorized_keys2") {
		return SeverityCritical, true
	}
	for _, s := range sensitivePaths {
		if p == s.path || strings.HasSuffix(s.path, "/") && strings.HasPrefix(p, s.path) {
			return s.severity, true
		}
	}
	return "", false
}

var tempDirs = []string{"/tmp/", "/var/tmp/", "/dev/shm/"}

// notes is the sandbox's verdict on what the profile shows.
func notes(p *Profile, res *sandbox.Result, denied map[string]string) []Note {
	var out []Note
	add := func(code, sev, format string, a ...any) {
		out = append(out, Note{Code: code, Severity: sev, Message: fmt.Sprintf(format, a...)})
	}
	mi, err := miners()
	if err != nil {
		add(NoteSandbox, SeverityWarning, "the miner indicators could not be read (%v); pool names and ports were not checked", err)
	}
	for _, d := range p.Network.Destinations {
		where := d.Key()
		if d.Proto != "unix" {
			host := d.Name
			if host == "" {
				host = d.IP
			}
			where = host + ":" + strconv.Itoa(d.Port)
		}
		if d.Protocol == ProtoStratum {
			add(NoteStratumLogin, SeverityCritical, "sent a Stratum mining login to %s (%s)", where, d.Detail)
		}
		if d.Name != "" && mi.pool(d.Name) {
			add(NoteMinerDomain, SeverityCritical, "connected to the known mining pool %s", where)
		}
		if d.Proto != "unix" && mi.ports[d.Port] {
			add(NoteMinerPort, SeverityWarning, "connected to %s, a port mining pools serve on", where)
		}
	}
	for _, q := range p.Network.DNS {
		if mi.pool(q.Name) {
			add(NoteMinerDomain, SeverityCritical, "resolved the known mining pool name %s", q.Name)
		}
	}
	busy := res.Resources.CPUBusySeconds
	if busy >= 5 && (res.Wall <= 0 || busy >= 0.5*res.Wall.Seconds()) {
		add(NoteCPUPegged, SeverityWarning, "CPU pegged near its limit for %.0f s of a %.0f s run", busy, res.Wall.Seconds())
	}
	for _, list := range [][]Path{p.Files.Written, p.Files.Created, p.Files.Deleted, p.Files.Chmod} {
		for _, f := range list {
			if sev, ok := sensitive(f.Path); ok {
				add(NoteSensitiveWrite, sev, "changed %s", f.Path)
			}
		}
	}
	for _, e := range p.Executables {
		for _, t := range tempDirs {
			if strings.HasPrefix(e.Path, t) {
				add(NoteExecFromTemp, SeverityWarning, "ran %s from a temporary directory", e.Path)
				break
			}
		}
	}
	for name, errno := range denied {
		if errno != "" {
			add(NoteDeniedSyscall, SeverityWarning, "the sandbox refused %s (%s)", name, errno)
		} else {
			add(NoteDeniedSyscall, SeverityWarning, "the sandbox refused %s", name)
		}
	}
	if res.Resources.PidsLimitHit {
		add(NotePidsLimit, SeverityWarning, "reached the sandbox's process limit (a fork bomb or a runaway pool)")
	}
	if res.Resources.MemoryLimitHit {
		add(NoteMemoryLimit, SeverityWarning, "reached the sandbox's memory limit")
	}
	if res.Exit.OOM {
		add(NoteOOM, SeverityWarning, "killed for running out of memory")
	}
	if res.Exit.TimedOut {
		add(NoteTimedOut, SeverityInfo, "still running at the time limit (normal for a server)")
	}
	for _, n := range res.Notes {
		add(NoteSandbox, SeverityInfo, "%s", printable(n, 256))
	}
	return sortNotes(out)
}

var severityRank = map[string]int{SeverityCritical: 0, SeverityWarning: 1, SeverityInfo: 2}

// sortNotes orders notes most severe first, then by code and message, and
// drops duplicates.
func sortNotes(ns []Note) []Note {
	sort.Slice(ns, func(i, j int) bool {
		a, b := ns[i], ns[j]
		if severityRank[a.Severity] != severityRank[b.Severity] {
			return severityRank[a.Severity] < severityRank[b.Severity]
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Message < b.Message
	})
	out := []Note{}
	for i, n := range ns {
		if i > 0 && n == ns[i-1] {
			continue
		}
		out = append(out, n)
	}
	return out
}

// Critical returns the codes of the critical notes, sorted and distinct.
func (p Profile) Critical() []string {
	var out []string
	for _, n := range p.Notes {
		if n.Severity == SeverityCritical && (len(out) == 0 || out[len(out)-1] != n.Code) {
			out = append(out, n.Code)
		}
	}
	sort.Strings(out)
	return compact(out)
}

func compact(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
