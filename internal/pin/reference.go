package pin

import (
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// validReference reports whether go-containerregistry's name.ParseReference
// (default options) accepts s. Every reference a run finds is checked
// several times; the plain ASCII ones files hold are checked here by the
// same rules without allocating, anything else is asked of
// name.ParseReference itself. FuzzValidReference holds the two equal.
func validReference(s string) bool {
	if !plainReference(s) {
		_, err := name.ParseReference(s)
		return err == nil
	}
	// name.NewTag: a tag after the last colon that has no slash after it
	base := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i+1:], "/") {
		tag := s[i+1:]
		if tag == "" || len(tag) > 128 || !allIn(tag, &tagChars) {
			return false
		}
		base = s[:i]
	}
	// name.NewRepository: a registry before the first slash if it looks
	// like a host name
	if base == "" {
		return false
	}
	registry, repo := "", base
	if i := strings.IndexByte(base, '/'); i >= 0 {
		if first := base[:i]; first == "localhost" || strings.ContainsAny(first, ".:") {
			registry, repo = first, base[i+1:]
		}
	}
	if repo == "" || len(repo) > 255 || !allIn(repo, &repositoryChars) {
		return false
	}
	return validRegistry(registry)
}

// plainReference is true for strings the fast path of validReference
// decides: printable ASCII, no digest, no URL scheme.
func plainReference(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '@' {
			return false
		}
	}
	return !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://")
}

// validRegistry is name.NewRegistry's check: an RFC 3986 authority that
// url.Parse reads back unchanged. A lower-case host name with an optional
// numeric port always is; anything else is asked of url.Parse.
func validRegistry(r string) bool {
	host, port, hasPort := strings.Cut(r, ":")
	simple := allIn(host, &hostChars) && (!hasPort || allIn(port, &digitChars))
	if simple {
		return true
	}
	u, err := url.Parse("//" + r)
	return err == nil && u.Host == r
}

type charSet [256]bool

func newCharSet(chars string) (s charSet) {
	for i := 0; i < len(chars); i++ {
		s[chars[i]] = true
	}
	return s
}

var (
	// the character sets of go-containerregistry's pkg/name
	tagChars        = newCharSet("abcdefghijklmnopqrstuvwxyz0123456789_-.ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	repositoryChars = newCharSet("abcdefghijklmnopqrstuvwxyz0123456789_-./")
	hostChars       = newCharSet("abcdefghijklmnopqrstuvwxyz0123456789.-")
	digitChars      = newCharSet("0123456789")
)

func allIn(s string, set *charSet) bool {
	for i := 0; i < len(s); i++ {
		if !set[s[i]] {
			return false
		}
	}
	return true
}
