package profile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
)

// Protocols a sinkholed connection's first bytes are classified as.
const (
	ProtoStratum = "stratum"
	ProtoHTTP    = "http"
	ProtoTLS     = "tls"
	ProtoSSH     = "ssh"
	ProtoDNS     = "dns"
	ProtoOther   = "other"
	ProtoNone    = "none" // connected but sent nothing
)

// detailMax bounds a classification's detail (it ends up in documents and
// terminals, and the bytes come from the sample).
const detailMax = 128

// Classify names the protocol of the first bytes a client sent to the
// sinkhole on port, and a detail worth showing: the Stratum method (and
// login), the HTTP "METHOD host/path", the TLS server name, the SSH
// banner. data is hostile; Classify never panics and reads nothing beyond it.
func Classify(port int, data []byte) (protocol, detail string) {
	if len(data) == 0 {
		if port == 53 {
			return ProtoDNS, ""
		}
		return ProtoNone, ""
	}
	if d, ok := stratum(data); ok {
		return ProtoStratum, d
	}
	if sni, ok := TLSServerName(data); ok {
		return ProtoTLS, printable(sni, detailMax)
	}
	if d, ok := httpRequest(data); ok {
		return ProtoHTTP, d
	}
	if bytes.HasPrefix(data, []byte("SSH-")) {
		line := data
		if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
			line = line[:i]
		}
		return ProtoSSH, printable(string(line), 64)
	}
	if port == 53 || dnsMessage(data) {
		return ProtoDNS, ""
	}
	return ProtoOther, ""
}

// stratum recognises a Stratum (v1 JSON-RPC over TCP) or XMRig-style
// login: mining.subscribe, mining.authorize or "method":"login".
func stratum(data []byte) (string, bool) {
	lower := bytes.ToLower(data)
	compact := bytes.Join(bytes.Fields(lower), nil) // "method": "login" → "method":"login"
	switch {
	case bytes.Contains(lower, []byte("mining.subscribe")),
		bytes.Contains(lower, []byte("mining.authorize")),
		bytes.Contains(compact, []byte(`"method":"login"`)):
	default:
		return "", false
	}
	// The first line is one JSON-RPC request; name its method and, for a
	// login, the account (a wallet address or pool user name).
	line := data
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	var req struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(line, &req) != nil || req.Method == "" {
		for _, m := range []string{"mining.subscribe", "mining.authorize", "login"} {
			if bytes.Contains(lower, []byte(m)) {
				return m, true
			}
		}
		return "", true
	}
	detail := req.Method
	var user string
	var obj struct {
		Login string `json:"login"`
		Agent string `json:"agent"`
	}
	var arr []any
	if json.Unmarshal(req.Params, &obj) == nil && obj.Login != "" {
		user = obj.Login
		if obj.Agent != "" {
			user += " agent " + obj.Agent
		}
	} else if json.Unmarshal(req.Params, &arr) == nil && len(arr) > 0 && req.Method == "mining.authorize" {
		if s, ok := arr[0].(string); ok {
			user = s
		}
	}
	if user != "" {
		detail += " " + user
	}
	return printable(detail, detailMax), true
}

var httpMethods = []string{"GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// httpRequest recognises an HTTP/1.x request line and names "METHOD host/path".
func httpRequest(data []byte) (string, bool) {
	text := string(data)
	method := ""
	for _, m := range httpMethods {
		if strings.HasPrefix(text, m+" ") {
			method = m
			break
		}
	}
	if method == "" {
		return "", false
	}
	end := strings.IndexAny(text, "\r\n")
	if end < 0 {
		end = len(text)
	}
	fields := strings.Fields(text[:end])
	if len(fields) < 2 {
		return "", false
	}
	if len(fields) >= 3 && !strings.HasPrefix(fields[2], "HTTP/") {
		return "", false
	}
	target := fields[1]
	host := ""
	for _, line := range strings.Split(text[end:], "\n") {
		line = strings.TrimRight(line, "\r")
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "host") {
			host = strings.TrimSpace(v)
			break
		}
	}
	// An absolute-form target (a proxy request) already names the host.
	if i := strings.Index(target, "://"); i >= 0 {
		target = target[i+3:]
		host = ""
	}
	// The query string often carries per-run values (tokens, nonces).
	if i := strings.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	return printable(method+" "+host+target, detailMax), true
}

// TLSServerName parses a TLS ClientHello record and returns the server
// name (SNI) it asks for; ok is true for any well-formed ClientHello, with
// or without a server name. It reads only data (which may be truncated at
// the sinkhole's limit: a ClientHello cut before its extensions is still a
// ClientHello, with no name).
func TLSServerName(data []byte) (name string, ok bool) {
	// Record header: type 22 (handshake), version 3.x, length.
	if len(data) < 5 || data[0] != 0x16 || data[1] != 0x03 {
		return "", false
	}
	rec := data[5:]
	if n := int(binary.BigEndian.Uint16(data[3:5])); n < len(rec) {
		rec = rec[:n]
	}
	// Handshake header: type 1 (ClientHello), 24-bit length.
	if len(rec) < 4 || rec[0] != 0x01 {
		return "", false
	}
	body := rec[4:]
	if n := int(rec[1])<<16 | int(rec[2])<<8 | int(rec[3]); n < len(body) {
		body = body[:n]
	}
	r := reader{b: body}
	if !r.skip(2 + 32) { // client version, random
		return "", true
	}
	if !r.skipVec8() || !r.skipVec16() || !r.skipVec8() { // session id, cipher suites, compression methods
		return "", true
	}
	exts, okExt := r.vec16()
	if !okExt {
		return "", true
	}
	er := reader{b: exts}
	for len(er.b) >= 4 {
		typ, _ := er.u16()
		ext, okE := er.vec16()
		if !okE {
			return "", true
		}
		if typ != 0 { // server_name
			continue
		}
		sr := reader{b: ext}
		list, okL := sr.vec16()
		if !okL {
			return "", true
		}
		lr := reader{b: list}
		for len(lr.b) >= 3 {
			kind := lr.b[0]
			lr.b = lr.b[1:]
			host, okH := lr.vec16()
			if !okH {
				return "", true
			}
			if kind == 0 && validHostName(host) {
				return strings.ToLower(string(host)), true
			}
		}
		return "", true
	}
	return "", true
}

func validHostName(b []byte) bool {
	if len(b) == 0 || len(b) > 253 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// reader reads TLS's length-prefixed vectors without ever reading past b.
type reader struct{ b []byte }

func (r *reader) skip(n int) bool {
	if n < 0 || len(r.b) < n {
		return false
	}
	r.b = r.b[n:]
	return true
}

func (r *reader) u16() (int, bool) {
	if len(r.b) < 2 {
		return 0, false
	}
	v := int(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v, true
}

func (r *reader) vec16() ([]byte, bool) {
	n, ok := r.u16()
	if !ok || len(r.b) < n {
		return nil, false
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, true
}

func (r *reader) skipVec8() bool {
	if len(r.b) < 1 {
		return false
	}
	n := int(r.b[0])
	r.b = r.b[1:]
	return r.skip(n)
}

func (r *reader) skipVec16() bool {
	_, ok := r.vec16()
	return ok
}

// dnsMessage recognises a DNS query over TCP (a 2-byte length, then a
// header with one question and the QR bit clear).
func dnsMessage(data []byte) bool {
	if len(data) < 2+12 {
		return false
	}
	n := int(binary.BigEndian.Uint16(data))
	h := data[2:]
	return n >= 12 && h[2]&0x80 == 0 && binary.BigEndian.Uint16(h[4:6]) == 1 && binary.BigEndian.Uint16(h[6:8]) == 0
}

// printable renders s for a document or a terminal: control and non-ASCII
// bytes become '.', and the result is at most max bytes.
func printable(s string, max int) string {
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			c = '.'
		}
		b = append(b, c)
	}
	return string(b)
}
