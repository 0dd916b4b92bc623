package harden_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/harden"
)

func TestParseConfig(t *testing.T) {
	c, err := harden.ParseConfig(strings.NewReader("keep:\n  - /app/templates/**\n  - /etc/app/*.conf\nnoDefaults: [zoneinfo]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Keep, []string{"/app/templates/**", "/etc/app/*.conf"}) || !slices.Equal(c.NoDefaults, []string{"zoneinfo"}) {
		t.Errorf("%+v", c)
	}
	if r := c.Rules("config"); len(r) != 2 || r[0].Source != "config" {
		t.Errorf("rules %+v", r)
	}
	for name, doc := range map[string]string{
		"relative glob":   "keep: [app/x]\n",
		"bad glob":        "keep: ['/[']\n",
		"unknown default": "noDefaults: [everything]\n",
		"unknown field":   "kep: [/x]\n",
		"two documents":   "keep: [/x]\n---\nkeep: [/y]\n",
		"not yaml":        "keep: [\n",
		"too large":       "keep:\n" + strings.Repeat("  - /x\n", harden.MaxConfigBytes/7+1),
	} {
		if _, err := harden.ParseConfig(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if c, err := harden.ParseConfig(strings.NewReader("")); err != nil || len(c.Keep) != 0 {
		t.Errorf("empty config: %+v %v", c, err)
	}
}

func TestRepositoryConfig(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "team"), 0o755)
	os.WriteFile(filepath.Join(dir, "team", "app.yaml"), []byte("keep: [/srv/**]\n"), 0o644)
	c, err := harden.LoadRepositoryConfig(dir, "team/app")
	if err != nil || !slices.Equal(c.Keep, []string{"/srv/**"}) {
		t.Errorf("%+v %v", c, err)
	}
	if c, err := harden.LoadRepositoryConfig(dir, "team/other"); err != nil || len(c.Keep) != 0 {
		t.Errorf("missing config: %+v %v", c, err)
	}
	for _, repo := range []string{"../etc/passwd", "/abs", "team/../../x", "a//b", ""} {
		if p := harden.RepositoryConfigPath(dir, repo); p != "" {
			t.Errorf("%q maps to %s", repo, p)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("keep: [/a/**]\nnoDefaults: [tmp]\n")
	f.Add("keep:\n  - !!binary aGVsbG8=\n")
	f.Add("&a [*a]")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := harden.ParseConfig(strings.NewReader(doc))
		if err != nil {
			return
		}
		for _, g := range c.Keep {
			if harden.ValidateGlob(g) != nil {
				t.Errorf("accepted glob %q", g)
			}
		}
	})
}
