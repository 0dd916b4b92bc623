package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/airlock-dev/airlock/internal/config"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "airlock.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return fs
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
addr: file:1
data: /from/file
registryHost: registry.file.example
allowUnvetted: ["file/**"]
maxManifestSize: 1000
tokenTTL: 30m
anonymousPull: false
storage:
  s3:
    region: file-region
    regionEndpoint: http://file:9000
log:
  format: json
`)
	env := envOf(map[string]string{
		"AIRLOCK_ADDR":                       "env:2",
		"AIRLOCK_DATA":                       "/from/env",
		"AIRLOCK_ALLOW_UNVETTED":             " cache/** , dev/*,,",
		"AIRLOCK_MAX_MANIFEST_SIZE":          "2000",
		"AIRLOCK_TOKEN_TTL":                  "1h",
		"AIRLOCK_ANONYMOUS_PULL":             "true",
		"AIRLOCK_STORAGE_S3_REGION":          "env-region",
		"AIRLOCK_STORAGE_S3_REGION_ENDPOINT": "http://env:9000",
	})
	fs := flags(t, "--addr", "flag:3", "--max-manifest-size=3000", "--allow-unvetted", "a/*", "--allow-unvetted", "b/**",
		"--storage-s3-region-endpoint", "http://flag:9000", "--anonymous-pull=false", "--foreign-layer-urls", `^https://mcr\.microsoft\.com/`)
	c, err := config.Load(file, env, fs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"addr: flag > env > file", c.Addr, "flag:3"},
		{"data: env > file", c.Data, "/from/env"},
		{"registryHost: file > default", c.RegistryHost, "registry.file.example"},
		{"allowUnvetted: flag list replaces env list", c.AllowUnvetted, []string{"a/*", "b/**"}},
		{"maxManifestSize: flag", c.MaxManifestSize, int64(3000)},
		{"tokenTTL: env > file", c.TokenTTL, time.Hour},
		{"anonymousPull: flag false > env true", c.AnonymousPull, false},
		{"s3 region: env > file", c.Storage.S3.Region, "env-region"},
		{"s3 regionEndpoint: flag", c.Storage.S3.RegionEndpoint, "http://flag:9000"},
		{"log format: file", c.Log.Format, "json"},
		{"log level: default", c.Log.Level, "info"},
		{"storage driver: default", c.Storage.Driver, "filesystem"},
		{"foreignLayerUrls: flag", c.ForeignLayerURLs, []string{`^https://mcr\.microsoft\.com/`}},
		{"tokenKeyFile: derived from data", c.TokenKeyFile, filepath.Join("/from/env", "token.key")},
		{"store dsn: derived from data", c.Store.DSN, filepath.Join("/from/env", "airlock.db")},
		{"blob root: derived from data", c.Storage.Filesystem.RootDirectory, filepath.Join("/from/env", "registry")},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.key, tc.got, tc.want)
		}
	}

	// The env list alone, split on commas with blanks dropped.
	c, err = config.Load(file, env, flags(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.AllowUnvetted, []string{"cache/**", "dev/*"}) || c.MaxManifestSize != 2000 || !c.AnonymousPull || c.Addr != "env:2" {
		t.Errorf("env over file: %+v", c)
	}
	// A bare boolean flag means true.
	c, err = config.Load("", nil, flags(t, "--anonymous-pull"))
	if err != nil || !c.AnonymousPull {
		t.Errorf("--anonymous-pull alone: %v, %v", c.AnonymousPull, err)
	}
	// Nothing given: the defaults, with derived paths and registryHost = addr.
	c, err = config.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	if c.Addr != d.Addr || c.RegistryHost != d.Addr || c.MaxManifestSize != 4<<20 || c.TokenTTL != 15*time.Minute || c.AllowUnvetted != nil || c.AnonymousPull {
		t.Errorf("defaults: %+v", c)
	}
	// An empty file is no configuration, not an error.
	if _, err := config.Load(writeFile(t, ""), nil, nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestFlagAndEnvNames(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	for flag, env := range map[string]string{
		"addr":                              "AIRLOCK_ADDR",
		"data":                              "AIRLOCK_DATA",
		"registry-host":                     "AIRLOCK_REGISTRY_HOST",
		"allow-unvetted":                    "AIRLOCK_ALLOW_UNVETTED",
		"anonymous-pull":                    "AIRLOCK_ANONYMOUS_PULL",
		"max-manifest-size":                 "AIRLOCK_MAX_MANIFEST_SIZE",
		"foreign-layer-urls":                "AIRLOCK_FOREIGN_LAYER_URLS",
		"token-ttl":                         "AIRLOCK_TOKEN_TTL",
		"token-key-file":                    "AIRLOCK_TOKEN_KEY_FILE",
		"tls-cert":                          "AIRLOCK_TLS_CERT",
		"tls-key":                           "AIRLOCK_TLS_KEY",
		"storage-driver":                    "AIRLOCK_STORAGE_DRIVER",
		"storage-filesystem-root-directory": "AIRLOCK_STORAGE_FILESYSTEM_ROOT_DIRECTORY",
		"storage-s3-bucket":                 "AIRLOCK_STORAGE_S3_BUCKET",
		"storage-s3-region":                 "AIRLOCK_STORAGE_S3_REGION",
		"storage-s3-region-endpoint":        "AIRLOCK_STORAGE_S3_REGION_ENDPOINT",
		"storage-s3-access-key":             "AIRLOCK_STORAGE_S3_ACCESS_KEY",
		"storage-s3-secret-key":             "AIRLOCK_STORAGE_S3_SECRET_KEY",
		"storage-s3-root-directory":         "AIRLOCK_STORAGE_S3_ROOT_DIRECTORY",
		"storage-s3-secure":                 "AIRLOCK_STORAGE_S3_SECURE",
		"storage-s3-force-path-style":       "AIRLOCK_STORAGE_S3_FORCE_PATH_STYLE",
		"store-driver":                      "AIRLOCK_STORE_DRIVER",
		"store-dsn":                         "AIRLOCK_STORE_DSN",
		"log-level":                         "AIRLOCK_LOG_LEVEL",
		"log-format":                        "AIRLOCK_LOG_FORMAT",
	} {
		f := fs.Lookup(flag)
		if f == nil {
			t.Errorf("no flag --%s", flag)
			continue
		}
		if !strings.Contains(f.Usage, "(env "+env+")") {
			t.Errorf("--%s usage %q does not name %s", flag, f.Usage, env)
		}
		if strings.HasPrefix(f.Usage, " ") {
			t.Errorf("--%s has no help text", flag)
		}
	}
	// Every key, including ones added after this test, has a flag with help and an env name.
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(f.Usage, "(env AIRLOCK_") || strings.HasPrefix(f.Usage, " (env") {
			t.Errorf("--%s usage %q lacks help or its env name", f.Name, f.Usage)
		}
		if f.Name != strings.ToLower(f.Name) || strings.Contains(f.Name, "_") {
			t.Errorf("flag --%s is not kebab-case", f.Name)
		}
	})
	// Each env name really sets its key.
	c, err := config.Load("", envOf(map[string]string{
		"AIRLOCK_STORAGE_S3_REGION_ENDPOINT": "http://minio:9000", "AIRLOCK_STORAGE_DRIVER": "s3", "AIRLOCK_STORAGE_S3_BUCKET": "b",
		"AIRLOCK_STORAGE_S3_FORCE_PATH_STYLE": "true", "AIRLOCK_FOREIGN_LAYER_URLS": "^https://a/,^https://b/", "AIRLOCK_TOKEN_TTL": "90s",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.S3.RegionEndpoint != "http://minio:9000" || !c.Storage.S3.ForcePathStyle || c.TokenTTL != 90*time.Second ||
		!reflect.DeepEqual(c.ForeignLayerURLs, []string{"^https://a/", "^https://b/"}) {
		t.Errorf("env: %+v", c)
	}
}

func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		env   map[string]string
		args  []string
		words []string
	}{
		{name: "unknown key", file: "adr: 1.2.3.4:5000\n", words: []string{"adr"}},
		{name: "unknown nested key", file: "storage:\n  s3:\n    regon: x\n", words: []string{"regon"}},
		{name: "misspelled case", file: "allowunvetted: [a]\n", words: []string{"allowunvetted"}},
		{name: "wrong type", file: "maxManifestSize: big\n", words: []string{"line 1", "big"}},
		{name: "integer duration", file: "tokenTTL: 30\n", words: []string{"30"}},
		{name: "not YAML", file: "addr: [\n", words: []string{"config"}},
		{name: "bad env number", env: map[string]string{"AIRLOCK_MAX_MANIFEST_SIZE": "4MB"}, words: []string{"AIRLOCK_MAX_MANIFEST_SIZE"}},
		{name: "bad env bool", env: map[string]string{"AIRLOCK_ANONYMOUS_PULL": "sure"}, words: []string{"AIRLOCK_ANONYMOUS_PULL"}},
		{name: "bad flag duration", args: []string{"--token-ttl", "forever"}, words: []string{"--token-ttl"}},
		{name: "zero manifest size", args: []string{"--max-manifest-size", "0"}, words: []string{"maxManifestSize must be positive"}},
		{name: "unknown storage driver", args: []string{"--storage-driver", "gcs"}, words: []string{"gcs", "filesystem or s3"}},
		{name: "s3 without bucket", args: []string{"--storage-driver", "s3"}, words: []string{"storage.s3.bucket"}},
		{name: "unknown store driver", args: []string{"--store-driver", "postgres"}, words: []string{"postgres"}},
		{name: "TLS cert without key", args: []string{"--tls-cert", "c.pem"}, words: []string{"both cert and key"}},
		{name: "bad foreign URL pattern", args: []string{"--foreign-layer-urls", "https://(x"}, words: []string{"foreignLayerUrls", "https://(x"}},
		{name: "bad glob", args: []string{"--allow-unvetted", "cache/["}, words: []string{"allowUnvetted", "cache/["}},
		{name: "empty data", args: []string{"--data", ""}, words: []string{"data directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			_, err := config.Load(path, envOf(tc.env), flags(t, tc.args...))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), nil, nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

// The printed configuration (airlock serve --print-config) is a config file
// that loads back to the same configuration.
func TestYAMLRoundTrip(t *testing.T) {
	c := config.Default()
	c.Addr, c.Data, c.RegistryHost = "0.0.0.0:5443", "/var/lib/airlock", "registry.example.com"
	c.AllowUnvetted, c.AnonymousPull, c.MaxManifestSize = []string{"cache/**", "dev/*"}, true, 1<<20
	c.ForeignLayerURLs = []string{`^https://mcr\.microsoft\.com/`}
	c.TokenTTL, c.TokenKeyFile = 42*time.Minute, "/etc/airlock/token.key"
	c.TLS = config.TLS{Cert: "/etc/airlock/tls.crt", Key: "/etc/airlock/tls.key"}
	c.Storage = config.Storage{Driver: "s3",
		Filesystem: config.Filesystem{RootDirectory: "/var/lib/airlock/registry"},
		S3: config.S3{Bucket: "blobs", Region: "eu-west-1", RegionEndpoint: "http://minio:9000", AccessKey: "ak", SecretKey: "sk",
			RootDirectory: "/airlock", Secure: true, ForcePathStyle: true}}
	c.Store = config.Store{Driver: "sqlite", DSN: "/var/lib/airlock/airlock.db"}
	c.Log = config.Log{Level: "debug", Format: "json"}
	c, err := config.Finish(c)
	if err != nil {
		t.Fatal(err)
	}
	y := c.YAML()
	for _, key := range []string{"allowUnvetted:", "foreignLayerUrls:", "tokenTTL: 42m0s", "regionEndpoint: http://minio:9000", "forcePathStyle: true"} {
		if !strings.Contains(y, key) {
			t.Errorf("printed configuration lacks %q:\n%s", key, y)
		}
	}
	back, err := config.Load(writeFile(t, y), nil, nil)
	if err != nil {
		t.Fatalf("load printed configuration: %v\n%s", err, y)
	}
	// Compared as printed: an empty list and no list print alike and mean the same.
	if back.YAML() != y || back.Storage.S3 != c.Storage.S3 || !reflect.DeepEqual(back.AllowUnvetted, c.AllowUnvetted) {
		t.Errorf("round trip changed the configuration:\n got %+v\nwant %+v", back, c)
	}

	// The defaults, as printed by a bare `airlock serve --print-config`, load back too.
	d, err := config.Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Load(writeFile(t, d.YAML()), nil, nil)
	if err != nil {
		t.Fatalf("load printed defaults: %v\n%s", err, d.YAML())
	}
	if again.YAML() != d.YAML() {
		t.Errorf("printed defaults do not round-trip:\n%s\nvs\n%s", again.YAML(), d.YAML())
	}
}
