package pin

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

var referenceSeeds = []string{
	"nginx", "nginx:1.27", "library/nginx:1.27-alpine", "docker.io/library/nginx:1.27", "127.0.0.1:5000/app:1",
	"localhost/app", "localhost:5000/a/b/c:v1.2.3_rc", "registry.example.com:443/team/app:latest",
	"Nginx:1", "nginx:", ":1", "", "a:b:c", "a/b:c/d", "host:port/app", "host:80x/app:1", "HOST.example/app",
	"[::1]:5000/app:1", "a%20b/c", "ex ample/app", "app:" + strings.Repeat("t", 128), "app:" + strings.Repeat("t", 129),
	strings.Repeat("a", 255), strings.Repeat("a", 256), "reg.example/" + strings.Repeat("a", 256), "a..b/c", "-a/b",
	"https://reg.example/app", "http://x", "a@sha256:" + strings.Repeat("0", 64), "a/b@c", "ünïcode/app:1", "app:tä",
	"a.b:/c", "a.b:1:2/c", "a:1/b:2", "user@host/app", "a:1.2.3", "_/a", "a/_:_",
}

// FuzzValidReference: the fast check says exactly what name.ParseReference says.
func FuzzValidReference(f *testing.F) {
	for _, s := range referenceSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := name.ParseReference(s)
		if got, want := validReference(s), err == nil; got != want {
			t.Fatalf("validReference(%q) = %v, name.ParseReference says %v (%v)", s, got, want, err)
		}
	})
}
