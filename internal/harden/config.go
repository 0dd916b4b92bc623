package harden

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is a repository's hardening configuration: what to keep beyond the
// profile and which defaults to drop. The CLI reads it with --config; the
// pipeline reads DATA/harden/REPOSITORY.yaml (RepositoryConfigPath).
//
//	keep:
//	  - /app/templates/**
//	  - /usr/lib/python3*/encodings/*
//	noDefaults: [zoneinfo]
type Config struct {
	Keep       []string `yaml:"keep" json:"keep"`
	NoDefaults []string `yaml:"noDefaults" json:"noDefaults"`
}

// MaxConfigBytes bounds a configuration file.
const MaxConfigBytes = 1 << 20

// ParseConfig reads a configuration document, refusing unknown fields,
// more than one document, a document over MaxConfigBytes, globs that are
// not absolute and defaults that do not exist.
func ParseConfig(r io.Reader) (Config, error) {
	var c Config
	b, err := io.ReadAll(io.LimitReader(r, MaxConfigBytes+1))
	if err != nil {
		return c, fmt.Errorf("read the hardening config: %w", err)
	}
	if len(b) > MaxConfigBytes {
		return c, fmt.Errorf("the hardening config is larger than %d bytes", MaxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("the hardening config is not valid (want keep: [globs], noDefaults: [names]): %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("the hardening config holds more than one document; keep one")
	}
	if len(c.Keep) > 10000 {
		return Config{}, errors.New("the hardening config lists more than 10000 keep globs")
	}
	for _, g := range c.Keep {
		if err := ValidateGlob(g); err != nil {
			return Config{}, err
		}
	}
	names := DefaultNames()
	for _, n := range c.NoDefaults {
		ok := false
		for _, d := range names {
			ok = ok || d == n
		}
		if !ok {
			return Config{}, fmt.Errorf("noDefaults names %q, which is not a default; the defaults are %s", n, strings.Join(names, ", "))
		}
	}
	return c, nil
}

// Rules returns the config's keep globs as rules from source.
func (c Config) Rules(source string) []KeepRule {
	var out []KeepRule
	for _, g := range c.Keep {
		out = append(out, KeepRule{Glob: g, Source: source})
	}
	return out
}

// RepositoryConfigPath is where a repository's configuration lives under
// dir; "" for a repository name that cannot be a path below dir.
func RepositoryConfigPath(dir, repository string) string {
	if repository == "" || strings.HasPrefix(repository, "/") {
		return ""
	}
	for _, part := range strings.Split(repository, "/") {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\\\x00") {
			return ""
		}
	}
	return filepath.Join(dir, filepath.FromSlash(repository)+".yaml")
}

// LoadRepositoryConfig reads the configuration of repository under dir; a
// missing file is an empty configuration.
func LoadRepositoryConfig(dir, repository string) (Config, error) {
	p := RepositoryConfigPath(dir, repository)
	if p == "" {
		return Config{}, nil
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", p, err)
	}
	return c, nil
}
