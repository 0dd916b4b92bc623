package sandbox

import (
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsQuery is what the responder recorded of one query.
type dnsQuery struct {
	name   string // lower case, without the trailing dot
	qtype  string // A, AAAA, MX, …
	answer string // the sinkhole address handed out, if any
}

// answerDNS parses one DNS query from the sandbox (hostile input) and
// builds the reply: every A question gets the sinkhole address alloc hands
// out for the name; other types get an empty, successful answer so clients
// fall back to A. Anything that is not a single well-formed question is
// dropped (ok false).
func answerDNS(msg []byte, alloc func(string) netip.Addr) (resp []byte, q dnsQuery, ok bool) {
	if len(msg) > 4096 {
		return nil, q, false
	}
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response || h.OpCode != 0 {
		return nil, q, false
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, q, false
	}
	question := qs[0]
	name := strings.ToLower(strings.TrimSuffix(question.Name.String(), "."))
	if name == "" || len(name) > 253 {
		return nil, q, false
	}
	q = dnsQuery{name: name, qtype: strings.TrimPrefix(question.Type.String(), "Type")}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, q, false
	}
	if err := b.Question(question); err != nil {
		return nil, q, false
	}
	if err := b.StartAnswers(); err != nil {
		return nil, q, false
	}
	if question.Type == dnsmessage.TypeA && question.Class == dnsmessage.ClassINET {
		a := alloc(name)
		q.answer = a.String()
		err := b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a.As4()})
		if err != nil {
			return nil, q, false
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil, q, false
	}
	return out, q, true
}
