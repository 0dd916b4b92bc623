//go:build linux

package sandbox

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

func dnsQueryBytes(t testing.TB, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 42, RecursionDesired: true})
	b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAnswerDNS(t *testing.T) {
	n := newNetwork("", func(Event) {}, nil)
	resp, q, ok := answerDNS(dnsQueryBytes(t, "Pool.MineXMR.invalid.", dnsmessage.TypeA), n.addressFor)
	if !ok || q.name != "pool.minexmr.invalid" || q.qtype != "A" || q.answer != "198.18.0.1" {
		t.Fatalf("answer = %+v %v", q, ok)
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil || h.ID != 42 || !h.Response || h.RCode != dnsmessage.RCodeSuccess {
		t.Fatalf("header %+v %v", h, err)
	}
	p.SkipAllQuestions()
	ans, err := p.AllAnswers()
	if err != nil || len(ans) != 1 || ans[0].Body.(*dnsmessage.AResource).A != [4]byte{198, 18, 0, 1} {
		t.Fatalf("answers %+v %v", ans, err)
	}
	// The same name gets the same address, another name another one.
	_, q2, _ := answerDNS(dnsQueryBytes(t, "pool.minexmr.invalid.", dnsmessage.TypeA), n.addressFor)
	_, q3, _ := answerDNS(dnsQueryBytes(t, "c2.example.invalid.", dnsmessage.TypeA), n.addressFor)
	if q2.answer != q.answer || q3.answer == q.answer {
		t.Errorf("addresses: %s %s %s", q.answer, q2.answer, q3.answer)
	}
	if got := n.nameOf(netip.MustParseAddr(q3.answer)); got != "c2.example.invalid" {
		t.Errorf("nameOf = %q", got)
	}
	// AAAA gets an empty answer so clients use A.
	resp, q, ok = answerDNS(dnsQueryBytes(t, "x.invalid.", dnsmessage.TypeAAAA), n.addressFor)
	if !ok || q.qtype != "AAAA" || q.answer != "" {
		t.Fatalf("AAAA: %+v %v", q, ok)
	}
	p = dnsmessage.Parser{}
	p.Start(resp)
	p.SkipAllQuestions()
	if ans, _ := p.AllAnswers(); len(ans) != 0 {
		t.Errorf("AAAA answers: %+v", ans)
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"truncated": dnsQueryBytes(t, "x.invalid.", dnsmessage.TypeA)[:14],
		"huge":      make([]byte, 70000),
		"response":  func() []byte { b := dnsQueryBytes(t, "x.invalid.", dnsmessage.TypeA); b[2] |= 0x80; return b }(),
	} {
		if _, _, ok := answerDNS(bad, n.addressFor); ok {
			t.Errorf("%s: answered a malformed query", name)
		}
	}
}

func FuzzAnswerDNS(f *testing.F) {
	f.Add(dnsQueryBytes(f, "pool.minexmr.invalid.", dnsmessage.TypeA))
	f.Add(dnsQueryBytes(f, "x.invalid.", dnsmessage.TypeAAAA))
	f.Add(dnsQueryBytes(f, "x.invalid.", dnsmessage.TypeTXT))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // a compression loop
	f.Fuzz(func(t *testing.T, msg []byte) {
		n := newNetwork("", func(Event) {}, nil)
		resp, q, ok := answerDNS(msg, n.addressFor)
		if !ok {
			return
		}
		var p dnsmessage.Parser
		if _, err := p.Start(resp); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if q.name == "" || len(q.name) > 253 {
			t.Fatalf("recorded name %q", q.name)
		}
	})
}

func sockaddr4(ip [4]byte, port uint16) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	copy(b[4:], ip[:])
	return b
}

func TestParseSockaddr(t *testing.T) {
	fam, ap, _ := parseSockaddr(sockaddr4([4]byte{198, 18, 0, 7}, 3333))
	if fam != unix.AF_INET || ap.String() != "198.18.0.7:3333" {
		t.Errorf("inet: %d %s", fam, ap)
	}
	b6 := make([]byte, 28)
	binary.LittleEndian.PutUint16(b6, unix.AF_INET6)
	binary.BigEndian.PutUint16(b6[2:], 443)
	copy(b6[8:], netip.MustParseAddr("::ffff:127.0.0.1").AsSlice())
	if fam, ap, _ := parseSockaddr(b6); fam != unix.AF_INET6 || ap.String() != "127.0.0.1:443" {
		t.Errorf("inet6 mapped: %d %s", fam, ap)
	}
	bu := append([]byte{unix.AF_UNIX, 0}, []byte("/run/docker.sock\x00junk")...)
	if fam, _, p := parseSockaddr(bu); fam != unix.AF_UNIX || p != "/run/docker.sock" {
		t.Errorf("unix: %d %q", fam, p)
	}
	if _, _, p := parseSockaddr(append([]byte{unix.AF_UNIX, 0, 0}, "abstract"...)); p != "@abstract" {
		t.Errorf("abstract: %q", p)
	}
	for _, short := range [][]byte{nil, {2}, sockaddr4([4]byte{}, 1)[:6], b6[:20]} {
		if fam, _, _ := parseSockaddr(short); fam == unix.AF_INET || fam == unix.AF_INET6 {
			t.Errorf("short sockaddr %v parsed", short)
		}
	}
}

func FuzzParseSockaddr(f *testing.F) {
	f.Add(sockaddr4([4]byte{127, 0, 0, 1}, 80))
	f.Add(append([]byte{unix.AF_UNIX, 0}, "/tmp/s"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 128 {
			b = b[:128] // the tracer never reads more
		}
		parseSockaddr(b)
	})
}

func writeRootfs(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if strings.HasPrefix(c, "->") {
			if err := os.Symlink(strings.TrimPrefix(c, "->"), full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveUser(t *testing.T) {
	root := writeRootfs(t, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nweb:x:33:34:www:/var/www:/usr/sbin/nologin\nbroken:x:abc:1::/:/bin/sh\n",
		"etc/group":  "root:x:0:\nwww-data:x:34:\nstaff:x:50:\n",
	})
	for user, want := range map[string]credential{
		"":          {uid: 0, gid: 0, home: "/root"},
		"0":         {uid: 0, gid: 0, home: "/root"},
		"web":       {uid: 33, gid: 34, home: "/var/www"},
		"33":        {uid: 33, gid: 34, home: "/var/www"},
		"web:staff": {uid: 33, gid: 50, home: "/var/www"},
		"1234":      {uid: 1234, gid: 1234, home: "/"},
		"1234:99":   {uid: 1234, gid: 99, home: "/"},
	} {
		got, err := resolveUser(root, user)
		if err != nil || got.uid != want.uid || got.gid != want.gid || got.home != want.home {
			t.Errorf("%q: %+v %v, want %+v", user, got, err, want)
		}
	}
	for _, bad := range []string{"nobody", "web:nogroup", "broken"} {
		if _, err := resolveUser(root, bad); err == nil {
			t.Errorf("%q resolved", bad)
		}
	}
	// /etc/passwd as a symlink to the host's: read inside the rootfs, so
	// the host's accounts are never seen.
	evil := writeRootfs(t, map[string]string{"etc/passwd": "->/etc/passwd"})
	if _, err := resolveUser(evil, "root"); err == nil {
		t.Errorf("a symlinked /etc/passwd was followed to the host")
	}
}

func FuzzResolveUser(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n", "root")
	f.Add("a:x:1:2::/h:/bin/sh\n", "g:x:3:\n", "a:g")
	f.Add("::::::\n:\n", ":::\n", ":")
	f.Fuzz(func(t *testing.T, passwd, group, user string) {
		if len(passwd)+len(group) > 1<<16 {
			return
		}
		root := writeRootfs(t, map[string]string{"etc/passwd": passwd, "etc/group": group})
		c, err := resolveUser(root, user)
		if err == nil && c.home == "" {
			t.Fatalf("resolved %q without a home", user)
		}
	})
}
