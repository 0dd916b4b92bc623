package profile

import (
	"reflect"
	"testing"

	"github.com/airlock-dev/airlock/internal/sandbox"
)

func TestParseHTTPProbe(t *testing.T) {
	for in, want := range map[string]sandbox.HTTPProbe{
		"8080/healthz": {Port: 8080, Path: "/healthz"},
		"80":           {Port: 80, Path: "/"},
		"443/a/b?c=d":  {Port: 443, Path: "/a/b?c=d"},
	} {
		got, err := ParseHTTPProbe(in)
		if err != nil || got != want {
			t.Errorf("ParseHTTPProbe(%q) = %+v, %v", in, got, err)
		}
		if back, _ := ParseHTTPProbe(FormatHTTPProbe(got)); back != got {
			t.Errorf("round trip of %q: %+v", in, back)
		}
	}
	for _, bad := range []string{"", "x/y", "0/a", "70000/a", "-1", "80/a b", "80/\x00"} {
		if _, err := ParseHTTPProbe(bad); err == nil {
			t.Errorf("ParseHTTPProbe(%q) accepted", bad)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"wget -qO- http://127.0.0.1:8080/": {"wget", "-qO-", "http://127.0.0.1:8080/"},
		`sh -c 'echo "a b" > /tmp/x'`:      {"sh", "-c", `echo "a b" > /tmp/x`},
		`a\ b "" c`:                        {"a b", "", "c"},
	} {
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "   ", `a 'b`, `a\`} {
		if _, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) accepted", bad)
		}
	}
}
