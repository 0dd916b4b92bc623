package profile

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/sandbox"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// clientHello captures the first bytes a real crypto/tls client sends for serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""})
		_ = cl.Handshake()
	}()
	buf := make([]byte, 4096)
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := s.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c.Close()
	<-done
	return buf[:n]
}

func TestClassify(t *testing.T) {
	hello := clientHello(t, "api.example.invalid")
	for _, tc := range []struct {
		name          string
		port          int
		data          []byte
		proto, detail string
	}{
		{"nothing sent", 443, nil, ProtoNone, ""},
		{"dns port silent", 53, nil, ProtoDNS, ""},
		{"stratum subscribe", 3333, []byte(`{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5"]}` + "\n"), ProtoStratum, "mining.subscribe"},
		{"stratum authorize", 3333, []byte(`{"id":2,"method":"mining.authorize","params":["wallet.worker","x"]}` + "\n"), ProtoStratum, "mining.authorize wallet.worker"},
		{"xmrig login", 4444, []byte(`{"id":1,"jsonrpc":"2.0","method": "login","params":{"login":"44AFFq5k","pass":"x","agent":"XMRig/6.21.0"}}` + "\n"), ProtoStratum, "login 44AFFq5k agent XMRig/6.21.0"},
		{"stratum not json", 3333, []byte("garbage mining.subscribe garbage"), ProtoStratum, "mining.subscribe"},
		{"http get", 80, []byte("GET /update.sh?id=42 HTTP/1.1\r\nHost: c2.example.invalid\r\nUser-Agent: x\r\n\r\n"), ProtoHTTP, "GET c2.example.invalid/update.sh"},
		{"http proxy form", 8080, []byte("GET http://x.example.invalid/a HTTP/1.1\r\n\r\n"), ProtoHTTP, "GET x.example.invalid/a"},
		{"not http", 80, []byte("GET"), ProtoOther, ""},
		{"tls sni", 443, hello, ProtoTLS, "api.example.invalid"},
		{"tls truncated", 443, hello[:60], ProtoTLS, ""},
		{"tls no sni", 443, clientHello(t, ""), ProtoTLS, ""},
		{"ssh", 22, []byte("SSH-2.0-OpenSSH_9.6\r\n"), ProtoSSH, "SSH-2.0-OpenSSH_9.6"},
		{"dns over tcp", 5353, []byte{0, 29, 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1, 0, 0, 0, 0}, ProtoDNS, ""},
		{"binary", 9000, []byte{0xde, 0xad, 0xbe, 0xef}, ProtoOther, ""},
		{"control bytes in detail", 80, []byte("GET /\x1b[31mred HTTP/1.1\r\nHost: h\r\n\r\n"), ProtoHTTP, "GET h/.[31mred"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, d := Classify(tc.port, tc.data)
			if p != tc.proto || d != tc.detail {
				t.Fatalf("Classify = %q %q, want %q %q", p, d, tc.proto, tc.detail)
			}
		})
	}
}

// events is a run of a program /app that starts /bin/sh, which runs a
// dropped /tmp binary that resolves a pool name and logs in with Stratum;
// /app also listens on 8080, reads its own /proc entries and a mkstemp file.
func events(pid int, poolIP string, at time.Duration) []sandbox.Event {
	p := func(off int) int { return pid + off }
	return []sandbox.Event{
		{Time: at, Kind: sandbox.EventExec, PID: p(0), PPID: 1, Path: "/app", Argv: []string{"/app", "-v"}},
		{Time: at + 1, Kind: sandbox.EventOpen, PID: p(0), Path: "/etc/app.conf"},
		{Time: at + 2, Kind: sandbox.EventOpen, PID: p(0), Path: "/etc/app.conf"},
		{Time: at + 3, Kind: sandbox.EventOpen, PID: p(0), Path: "/proc/" + itoa(p(0)) + "/status"},
		{Time: at + 4, Kind: sandbox.EventOpen, PID: p(0), Path: "/etc/missing.conf", Missing: true},
		{Time: at + 5, Kind: sandbox.EventCreate, PID: p(0), Path: "/tmp/app-" + itoa(p(0)*7919) + "/cache.db", Mode: 0o600},
		{Time: at + 6, Kind: sandbox.EventBind, PID: p(0), Proto: "tcp", Addr: "0.0.0.0", Port: 8080},
		{Time: at + 7, Kind: sandbox.EventListen, PID: p(0), Proto: "tcp"},
		{Time: at + 8, Kind: sandbox.EventExec, PID: p(1), PPID: p(0), Path: "/bin/sh", Argv: []string{"sh", "-c", "/tmp/.x/kworker"}},
		{Time: at + 9, Kind: sandbox.EventCreate, PID: p(1), Path: "/tmp/.x/kworker", Mode: 0o755},
		{Time: at + 10, Kind: sandbox.EventExec, PID: p(2), PPID: p(1), Path: "/tmp/.x/kworker", Argv: []string{"/tmp/.x/kworker"}},
		{Time: at + 11, Kind: sandbox.EventDNS, PID: p(2), Name: "pool.example.invalid.", QType: "A", Addr: poolIP},
		{Time: at + 12, Kind: sandbox.EventConnect, PID: p(2), Proto: "tcp", Addr: poolIP, Port: 3333},
		{Time: at + 13, Kind: sandbox.EventSinkhole, Proto: "tcp", Addr: poolIP, Port: 3333,
			Data: []byte(`{"id":1,"method":"login","params":{"login":"wallet","pass":"x"}}` + "\n")},
		{Time: at + 14, Kind: sandbox.EventWrite, PID: p(2), Path: "/etc/ld.so.preload"},
		{Time: at + 15, Kind: sandbox.EventDenied, PID: p(2), Name: "mount", Target: "EPERM"},
		{Time: at + 16, Kind: sandbox.EventConnect, PID: p(0), Proto: "unix", Addr: "/run/docker.sock"},
		{Time: at + 17, Kind: sandbox.EventExit, PID: p(2), ExitCode: 0},
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func result(pid int, poolIP string) *sandbox.Result {
	return &sandbox.Result{
		Events:    events(pid, poolIP, time.Duration(pid)*time.Millisecond),
		Exit:      sandbox.ExitStatus{TimedOut: true},
		Resources: sandbox.Resources{CPUSeconds: 19.5 + float64(pid)/1000, CPUBusySeconds: 18, PeakMemoryBytes: 40 << 20, PeakPids: 3},
		Probes:    []sandbox.ProbeResult{{Kind: "http", Target: "8080/healthz", OK: true, Status: 200, Output: "ok"}},
		Mode:      "root",
		Wall:      20 * time.Second,
	}
}

func TestBuild(t *testing.T) {
	p := Build(result(100, "198.18.0.7"), Image{Digest: digest}, Run{Entrypoint: []string{"/app"}, Duration: "20s"})
	want := Profile{
		SchemaVersion: SchemaVersion,
		Image:         Image{Digest: digest},
		Run:           Run{Entrypoint: []string{"/app"}, Duration: "20s", Mode: "root"},
		Executables: []Exec{
			{Path: "/app", Argv: [][]string{{"/app", "-v"}}, Parents: []string{}, Count: 1},
			{Path: "/bin/sh", Argv: [][]string{{"sh", "-c", "/tmp/.x/kworker"}}, Parents: []string{"/app"}, Count: 1},
			{Path: "/tmp/.x/kworker", Argv: [][]string{{"/tmp/.x/kworker"}}, Parents: []string{"/bin/sh"}, Count: 1},
		},
		Files: Files{
			Read:    []Path{{Path: "/etc/app.conf", Count: 2}, {Path: "/proc/*/status", Pattern: true, Count: 1}},
			Written: []Path{{Path: "/etc/ld.so.preload", Count: 1}},
			Created: []Path{{Path: "/tmp/.x/kworker", Mode: "0755", Count: 1}, {Path: "/tmp/app-*/cache.db", Pattern: true, Mode: "0600", Count: 1}},
			Deleted: []Path{}, Chmod: []Path{},
			Missing: []Path{{Path: "/etc/missing.conf", Count: 1}},
		},
		Network: Network{
			DNS: []DNSQuery{{Name: "pool.example.invalid", Type: "A", Count: 1}},
			Destinations: []Destination{
				{Proto: "tcp", Name: "pool.example.invalid", IP: "198.18.0.7", Port: 3333, Protocol: ProtoStratum, Detail: "login wallet",
					FirstBytes: `{"id":1,"method":"login","params":{"login":"wallet","pass":"x"}}.`, Count: 1},
				{Proto: "unix", IP: "/run/docker.sock", Protocol: ProtoNone, Count: 1},
			},
			Listening: []Listen{{Proto: "tcp", Addr: "0.0.0.0", Port: 8080}},
		},
		Probes:    []Probe{{Kind: "http", Target: "8080/healthz", OK: true, Status: 200, Output: "ok"}},
		Exit:      Exit{TimedOut: true},
		Resources: Resources{CPUSeconds: 19.6, CPUBusySeconds: 18, PeakMemoryBytes: 40 << 20, PeakPids: 3},
		Notes: []Note{
			{Code: NoteSensitiveWrite, Severity: SeverityCritical, Message: "changed /etc/ld.so.preload"},
			{Code: NoteStratumLogin, Severity: SeverityCritical, Message: "sent a Stratum mining login to pool.example.invalid:3333 (login wallet)"},
			{Code: NoteCPUPegged, Severity: SeverityWarning, Message: "CPU pegged near its limit for 18 s of a 20 s run"},
			{Code: NoteDeniedSyscall, Severity: SeverityWarning, Message: "the sandbox refused mount (EPERM)"},
			{Code: NoteExecFromTemp, Severity: SeverityWarning, Message: "ran /tmp/.x/kworker from a temporary directory"},
			{Code: NoteMinerPort, Severity: SeverityWarning, Message: "connected to pool.example.invalid:3333, a port mining pools serve on"},
			{Code: NoteTimedOut, Severity: SeverityInfo, Message: "still running at the time limit (normal for a server)"},
		},
		Stats: Stats{Events: 18, Processes: 3},
	}
	if !reflect.DeepEqual(p, want) {
		g, _ := json.MarshalIndent(p, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("profile:\n%s\nwant:\n%s", g, w)
	}
	if c := p.Critical(); !reflect.DeepEqual(c, []string{NoteSensitiveWrite, NoteStratumLogin}) {
		t.Errorf("critical codes %v", c)
	}
}

func TestBuildKnownPoolAndLimits(t *testing.T) {
	res := &sandbox.Result{
		Events: []sandbox.Event{
			{Kind: sandbox.EventDNS, Name: "xmr-eu1.nanopool.org", QType: "AAAA", Addr: "fd00::9"},
			{Kind: sandbox.EventSinkhole, Proto: "tcp6", Addr: "fd00::9", Port: 14444},
			{Kind: sandbox.EventSinkhole, Proto: "tcp", Addr: "198.18.0.9", Port: 443, Name: "eu.stratum.slushpool.com", Data: clientHello(t, "eu.stratum.slushpool.com")},
		},
		Exit:      sandbox.ExitStatus{Code: 137, OOM: true},
		Resources: sandbox.Resources{PidsLimitHit: true, MemoryLimitHit: true},
		Notes:     []string{"time limit reached"},
	}
	p := Build(res, Image{}, Run{})
	var codes []string
	for _, n := range p.Notes {
		codes = append(codes, n.Severity+" "+n.Code+": "+n.Message)
	}
	want := []string{
		"critical miner-pool-domain: connected to the known mining pool eu.stratum.slushpool.com:443",
		"critical miner-pool-domain: connected to the known mining pool xmr-eu1.nanopool.org:14444",
		"critical miner-pool-domain: resolved the known mining pool name xmr-eu1.nanopool.org",
		"warning memory-limit: reached the sandbox's memory limit",
		"warning miner-pool-port: connected to xmr-eu1.nanopool.org:14444, a port mining pools serve on",
		"warning oom-killed: killed for running out of memory",
		"warning pids-limit: reached the sandbox's process limit (a fork bomb or a runaway pool)",
		"info sandbox: time limit reached",
	}
	if !reflect.DeepEqual(codes, want) {
		t.Fatalf("notes:\n%s\nwant:\n%s", strings.Join(codes, "\n"), strings.Join(want, "\n"))
	}
	if d := p.Network.Destinations; len(d) != 2 || d[0].Protocol != ProtoTLS || d[0].Detail != "eu.stratum.slushpool.com" || d[0].FirstBytes != "" ||
		d[1].Key() != "tcp xmr-eu1.nanopool.org:14444 none" {
		t.Fatalf("destinations %+v", d)
	}
}

func TestCollapse(t *testing.T) {
	for in, want := range map[string]string{
		"/proc/123/status":                          "/proc/*/status",
		"/proc/123/task/456/stat":                   "/proc/*/task/*/stat",
		"/proc/self/status":                         "/proc/self/status",
		"/proc/sys/kernel/pid_max":                  "/proc/sys/kernel/pid_max",
		"/tmp/tmp.Xa81kQzB/data":                    "/tmp/tmp.*/data",
		"/tmp/go-build2203971/b001/exe":             "/tmp/go-build*/b001/exe",
		"/tmp/3f2a9c1e-7b4d-4e0a-9f1c-2b3d4e5f6a7b": "/tmp/*",
		"/var/run/app.pid":                          "/var/run/app.pid",
		"/dev/shm/sem.a1b2c3d4e5":                   "/dev/shm/sem.*",
		"/etc/ssl/certs/1234abcd.0":                 "/etc/ssl/certs/1234abcd.0",
		"/tmp/cache.db":                             "/tmp/cache.db",
	} {
		got, _ := Collapse(in)
		if got != want {
			t.Errorf("Collapse(%s) = %s, want %s", in, got, want)
		}
	}
}

// Two runs of the same behaviour (other pids, another sinkhole address,
// other times, counts and CPU figures) are equal after Normalize.
func TestNormalizeTwoRuns(t *testing.T) {
	a := Build(result(100, "198.18.0.7"), Image{Digest: digest}, Run{StartedAt: "2026-01-01T00:00:00Z"})
	rb := result(4242, "198.18.0.12")
	rb.Events = append(rb.Events, rb.Events[1]) // read /etc/app.conf once more
	rb.Resources.CPUBusySeconds = 19
	b := Build(rb, Image{Digest: digest}, Run{StartedAt: "2026-01-01T00:05:00Z"})
	if reflect.DeepEqual(a, b) {
		t.Fatal("the runs are identical before Normalize; the test proves nothing")
	}
	na, nb := Normalize(a), Normalize(b)
	ja, _ := Marshal(na)
	jb, _ := Marshal(nb)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("after Normalize:\n%s\n%s", ja, jb)
	}
	if d := Compare(a, b); !d.Empty() {
		t.Fatalf("diff of two runs: %+v", d)
	}
	// Normalize does not change its argument.
	if a.Resources.CPUSeconds == 0 || a.Network.Destinations[0].IP == "" {
		t.Fatal("Normalize changed its argument")
	}
}

func TestDiff(t *testing.T) {
	cleanRes := &sandbox.Result{Events: events(10, "198.18.0.7", 0)[:8], Exit: sandbox.ExitStatus{TimedOut: true}}
	clean := Build(cleanRes, Image{Digest: digest}, Run{})
	trojan := Build(result(20, "198.18.0.9"), Image{Digest: "sha256:" + strings.Repeat("f", 64)}, Run{})
	d := Compare(clean, trojan)
	want := Diff{
		Old: clean.Image, New: trojan.Image,
		Executables:  Change{Added: []string{"/bin/sh", "/tmp/.x/kworker"}, Removed: []string{}},
		Destinations: Change{Added: []string{"tcp pool.example.invalid:3333 stratum", "unix /run/docker.sock"}, Removed: []string{}},
		DNS:          Change{Added: []string{"pool.example.invalid A"}, Removed: []string{}},
		Listening:    Change{Added: []string{}, Removed: []string{}},
		Written:      Change{Added: []string{"/etc/ld.so.preload", "/tmp/.x/kworker"}, Removed: []string{}},
		Deleted:      Change{Added: []string{}, Removed: []string{}},
		Notes: Change{Added: []string{
			"cpu-pegged: CPU pegged near its limit for most of the run",
			"denied-syscall: the sandbox refused mount (EPERM)",
			"exec-from-temp: ran /tmp/.x/kworker from a temporary directory",
			"miner-pool-port: connected to pool.example.invalid:3333, a port mining pools serve on",
			"sensitive-write: changed /etc/ld.so.preload",
			"stratum-login: sent a Stratum mining login to pool.example.invalid:3333 (login wallet)",
		}, Removed: []string{}},
	}
	if !reflect.DeepEqual(d, want) {
		g, _ := json.MarshalIndent(d, "", " ")
		t.Fatalf("diff:\n%s", g)
	}
	back := Compare(trojan, clean)
	if !reflect.DeepEqual(back.Executables.Removed, d.Executables.Added) || len(back.Executables.Added) != 0 {
		t.Fatalf("reverse diff %+v", back)
	}
	var text bytes.Buffer
	if err := d.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"+ executable  /tmp/.x/kworker", "+ destination tcp pool.example.invalid:3333 stratum", "+ dns         pool.example.invalid A"} {
		if !strings.Contains(text.String(), line+"\n") {
			t.Errorf("text diff lacks %q:\n%s", line, text.String())
		}
	}
	var none bytes.Buffer
	_ = Compare(clean, clean).WriteText(&none)
	if !strings.Contains(none.String(), "no change in behaviour") {
		t.Errorf("empty diff says %q", none.String())
	}
}

func TestParseRoundTrip(t *testing.T) {
	p := Build(result(100, "198.18.0.7"), Image{Digest: digest, Reference: "r.example.invalid/app:1"}, Run{Entrypoint: []string{"/app"}})
	b, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip changed the profile")
	}
	// A minimal document gets empty lists, so it marshals like a built one.
	m, err := Parse(strings.NewReader(`{"schemaVersion":"` + SchemaVersion + `","image":{"digest":""},"future":{"field":1}}`))
	if err != nil || m.Files.Read == nil || m.Network.Destinations == nil || m.Notes == nil {
		t.Fatalf("minimal: %+v %v", m, err)
	}
}

func TestParseRejects(t *testing.T) {
	v := `"schemaVersion":"` + SchemaVersion + `"`
	for name, doc := range map[string]string{
		"not json":          `schemaVersion: v1`,
		"other version":     `{"schemaVersion":"airlock.dev/profile/v2"}`,
		"no version":        `{}`,
		"trailing data":     `{` + v + `} {}`,
		"bad digest":        `{` + v + `,"image":{"digest":"sha256:../../etc"}}`,
		"relative exec":     `{` + v + `,"executables":[{"path":"bin/sh"}]}`,
		"relative file":     `{` + v + `,"files":{"written":[{"path":"../x"}]}}`,
		"negative count":    `{` + v + `,"files":{"read":[{"path":"/x","count":-1}]}}`,
		"port out of range": `{` + v + `,"network":{"destinations":[{"ip":"1.2.3.4","port":70000}]}}`,
		"listen negative":   `{` + v + `,"network":{"listening":[{"port":-1}]}}`,
		"bad severity":      `{` + v + `,"notes":[{"code":"x","severity":"fatal"}]}`,
		"wrong type":        `{` + v + `,"executables":{"path":"/x"}}`,
		"huge":              `{` + v + `,"x":"` + strings.Repeat("a", MaxDocument) + `"}`,
		"deep":              strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(strings.NewReader(doc)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want ErrInvalid", err)
			}
		})
	}
}

func FuzzTLSServerName(f *testing.F) {
	hello := clientHello(f, "pool.example.invalid")
	f.Add(hello)
	f.Add(hello[:40])
	f.Add([]byte{0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		name, ok := TLSServerName(data)
		if !ok && name != "" {
			t.Fatalf("a name %q from something that is not a ClientHello", name)
		}
		if name != "" && !validHostName([]byte(name)) {
			t.Fatalf("invalid host name %q", name)
		}
	})
}

func FuzzClassify(f *testing.F) {
	f.Add(3333, []byte(`{"id":1,"method":"login","params":{"login":"w"}}`))
	f.Add(80, []byte("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))
	f.Add(22, []byte("SSH-2.0-x\r\n"))
	f.Add(443, clientHello(f, "a.example.invalid"))
	f.Add(53, []byte{0, 12, 1, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, port int, data []byte) {
		proto, detail := Classify(port, data)
		if proto == "" || len(detail) > detailMax {
			t.Fatalf("Classify = %q %q", proto, detail)
		}
		for i := 0; i < len(detail); i++ {
			if detail[i] < 0x20 || detail[i] >= 0x7f {
				t.Fatalf("unprintable detail %q", detail)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	b, _ := Marshal(Build(result(100, "198.18.0.7"), Image{Digest: digest}, Run{}))
	f.Add(b)
	f.Add([]byte(`{"schemaVersion":"` + SchemaVersion + `"}`))
	f.Add([]byte(`{"schemaVersion":"` + SchemaVersion + `","files":{"read":[{"path":"x"}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not marked invalid: %v", err)
			}
			return
		}
		// What Parse accepts marshals and parses again to the same profile,
		// and can be diffed and rendered.
		out, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(bytes.NewReader(out))
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("re-parse: %v", err)
		}
		_ = Compare(p, q).WriteText(&bytes.Buffer{})
		_ = WriteTable(&bytes.Buffer{}, p)
		_ = Normalize(p)
	})
}

// A query to the sandbox's own DNS responder is listed under dns, not as a
// destination; removing or chmod-ing what does not exist changes nothing.
func TestBuildResolverAndMissing(t *testing.T) {
	p := Build(&sandbox.Result{Events: []sandbox.Event{
		{Kind: sandbox.EventConnect, PID: 2, Proto: "udp", Addr: "10.0.2.3", Port: 53},
		{Kind: sandbox.EventDNS, Proto: "udp", Name: "example.invalid", QType: "A", Addr: "198.18.0.2"},
		{Kind: sandbox.EventUnlink, PID: 2, Path: "/tmp/gone", Missing: true},
		{Kind: sandbox.EventChmod, PID: 2, Path: "/tmp/gone", Mode: 0o777, Missing: true},
		{Kind: sandbox.EventRename, PID: 2, Path: "/tmp/gone", Target: "/tmp/here", Missing: true},
		{Kind: sandbox.EventRename, PID: 2, Path: "/etc/a", Target: "/etc/b"},
	}}, Image{}, Run{})
	if len(p.Network.Destinations) != 0 || len(p.Network.DNS) != 1 {
		t.Fatalf("network %+v", p.Network)
	}
	if len(p.Files.Chmod) != 0 || !reflect.DeepEqual(p.Files.Deleted, []Path{{Path: "/etc/a", Count: 1}}) ||
		!reflect.DeepEqual(p.Files.Created, []Path{{Path: "/etc/b", Count: 1}}) {
		t.Fatalf("files %+v", p.Files)
	}
	// Without any DNS answer, a connection to port 53 is a destination of its own.
	q := Build(&sandbox.Result{Events: []sandbox.Event{{Kind: sandbox.EventConnect, Proto: "udp", Addr: "8.8.8.8", Port: 53}}}, Image{}, Run{})
	if len(q.Network.Destinations) != 1 || q.Network.Destinations[0].Key() != "udp 8.8.8.8:53 dns" {
		t.Fatalf("destinations %+v", q.Network.Destinations)
	}
}

// A sample that runs many distinct commands and creates many files gets a
// bounded profile that Parse accepts, and says what was dropped.
func TestBuildBounds(t *testing.T) {
	var evs []sandbox.Event
	for i := 0; i < MaxListEntries+10; i++ {
		evs = append(evs, sandbox.Event{Kind: sandbox.EventCreate, PID: 2, Path: "/data/f" + itoa(i)})
	}
	for i := 0; i < MaxArgv+3; i++ {
		evs = append(evs, sandbox.Event{Kind: sandbox.EventExec, PID: 3 + i, PPID: 2, Path: "/bin/sh", Argv: []string{"sh", "-c", "echo " + itoa(i)}})
	}
	p := Build(&sandbox.Result{Events: evs}, Image{}, Run{})
	if len(p.Files.Created) != MaxListEntries || len(p.Executables[0].Argv) != MaxArgv {
		t.Fatalf("created %d, argv %d", len(p.Files.Created), len(p.Executables[0].Argv))
	}
	var msgs []string
	for _, n := range p.Notes {
		if n.Code == NoteTruncated {
			msgs = append(msgs, n.Message)
		}
	}
	want := []string{"argv of executables: 3 more entries than a profile keeps were dropped", "files created: 10 more entries than a profile keeps were dropped"}
	if !reflect.DeepEqual(msgs, want) {
		t.Fatalf("notes %v", msgs)
	}
	b, _ := Marshal(p)
	if _, err := Parse(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// Long names in every entry are cut to the document budget too.
func TestBuildSizeBudget(t *testing.T) {
	long := strings.Repeat("x", 4000)
	var evs []sandbox.Event
	for i := 0; i < 4000; i++ {
		evs = append(evs, sandbox.Event{Kind: sandbox.EventOpen, PID: 2, Path: "/" + long + itoa(i)})
	}
	args := make([]string, 500)
	for i := range args {
		args[i] = long
	}
	evs = append(evs, sandbox.Event{Kind: sandbox.EventExec, PID: 3, Path: "/bin/x", Argv: args})
	p := Build(&sandbox.Result{Events: evs}, Image{}, Run{})
	b, _ := Marshal(p)
	if len(b) > documentBudget+documentBudget/8 || len(p.Files.Read) == 0 || len(p.Executables[0].Argv[0]) != maxArgs+1 {
		t.Fatalf("%d bytes, %d reads, argv %d", len(b), len(p.Files.Read), len(p.Executables[0].Argv[0]))
	}
	if _, err := Parse(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range p.Notes {
		found = found || n.Code == NoteTruncated && strings.Contains(n.Message, "larger than 8 MiB")
	}
	if !found {
		t.Fatalf("notes %+v", p.Notes)
	}
}
