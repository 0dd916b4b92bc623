// Package config holds the configuration of `airlock serve`: one YAML file whose
// every key can be overridden by an AIRLOCK_* environment variable and by a
// command-line flag, in that order of precedence (flag > env > file > default).
package config

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// Config is the effective configuration of a server.
type Config struct {
	// Addr is the listen address of the registry, API and UI.
	Addr string `yaml:"addr" help:"listen address"`
	// Data is the directory for the SQLite store, tokens, keys and (by default) blobs.
	Data string `yaml:"data" help:"data directory"`
	// RegistryHost is the host[:port] users write in image references; defaults to Addr.
	RegistryHost string `yaml:"registryHost" help:"registry host name users write in image references (default: the listen address)"`
	// AllowUnvetted lists repository globs that skip vetting and behave like a plain registry.
	AllowUnvetted []string `yaml:"allowUnvetted" help:"repository glob that skips vetting (repeatable; ** matches across /)"`
	// AnonymousPull lets clients without a token pull approved content.
	AnonymousPull bool `yaml:"anonymousPull" help:"allow pulls of approved content without a token"`
	// MaxManifestSize bounds a manifest body in bytes.
	MaxManifestSize int64 `yaml:"maxManifestSize" help:"largest manifest accepted, in bytes"`
	// ForeignLayerURLs are regular expressions of URLs that non-distributable
	// layers may point to. Default none: a layer fetched from elsewhere is unvetted.
	ForeignLayerURLs []string `yaml:"foreignLayerUrls" help:"regular expression of URLs that non-distributable layers may point to (repeatable)"`
	// TokenTTL is the lifetime of bearer tokens issued by the token endpoint.
	TokenTTL time.Duration `yaml:"tokenTTL" help:"lifetime of registry bearer tokens issued by /token"`
	// TokenKeyFile holds the HMAC key for issued bearer tokens; replicas must share it.
	TokenKeyFile string `yaml:"tokenKeyFile" help:"HMAC key file for registry bearer tokens (default DATA/token.key)"`
	// TLS serves HTTPS when both files are given.
	TLS      TLS      `yaml:"tls"`
	Import   Import   `yaml:"import"`
	Pipeline Pipeline `yaml:"pipeline"`
	Storage  Storage  `yaml:"storage"`
	Store    Store    `yaml:"store"`
	Log      Log      `yaml:"log"`
	Signing  Signing  `yaml:"signing"`
	Policy   Policy   `yaml:"policy"`
	Approval Approval `yaml:"approval"`
	Profile  Profile  `yaml:"profile"`
	Alerts   Alerts   `yaml:"alerts"`
	// Admission configures the Kubernetes admission webhook.
	Admission Admission `yaml:"admission"`
}

// Admission configures the Kubernetes admission webhook `airlock serve` runs
// on its own TLS listener (see docs/admission.md).
type Admission struct {
	WebhookAddr string `yaml:"webhookAddr" help:"listen address of the admission webhook (TLS; alias --webhook-addr); 'off' runs none"`
	TLSCert     string `yaml:"tlsCert" help:"webhook TLS certificate (PEM); default the main --tls-cert, else a self-signed one generated in DATA"`
	TLSKey      string `yaml:"tlsKey" help:"webhook TLS private key (PEM)"`
	// TLSHosts are the names a generated certificate is valid for.
	TLSHosts []string `yaml:"tlsHosts" help:"host name or IP a generated webhook certificate covers (repeatable; default the airlock-webhook Service and loopback)"`
	// RegistryHosts are the private registry as pods name it; default registryHost.
	RegistryHosts []string `yaml:"registryHosts" help:"private registry host pods may pull from, matched exactly (repeatable; default registryHost)"`
	Mode          string   `yaml:"mode" help:"what the webhook does with a pod it would deny: enforce, warn or dry-run"`
	// Namespaces are "GLOB=MODE" entries; the first match wins.
	Namespaces []string `yaml:"namespaces" help:"mode of matching namespaces, GLOB=MODE (repeatable; first match wins)"`
	Exempt     []string `yaml:"exempt" help:"namespace glob admitted whatever its images; each use is audited (repeatable)"`
	PodsOnly   bool     `yaml:"podsOnly" help:"pin tags in Pods only; workload templates are validated but not rewritten (GitOps)"`
	// MapExternal rewrites public references to their approved private copy.
	MapExternal bool   `yaml:"mapExternal" help:"rewrite public image references to their approved private copy (named like import, see import.mappings)"`
	KeyFile     string `yaml:"keyFile" help:"public key (PEM) verifying approval attestations (default: the signing key's public half)"`
	// MaxStale is how long decisions may rest on approvals read before the
	// store became unreachable; after it every pod is denied.
	MaxStale        time.Duration `yaml:"maxStale" help:"how old the approval index may grow while the store is unreachable before every pod is denied"`
	MaxRequestBytes int64         `yaml:"maxRequestBytes" help:"largest AdmissionReview accepted, in bytes"`
}

// Alerts configures where alerts go besides the log and the metrics: new
// findings on approved digests, scheduled and executed revocations.
type Alerts struct {
	// Webhook receives each alert as a JSON POST.
	Webhook string `yaml:"webhook" help:"URL that receives each alert (new findings on an approved digest, revocations) as a JSON POST"`
}

// Signing configures the key that signs approval attestations.
type Signing struct {
	// KeyFile is a PEM private key (ECDSA P-256 or Ed25519); when empty,
	// DATA/signing.key is used, created on first start.
	KeyFile string `yaml:"keyFile" help:"PEM private key that signs approval attestations (default DATA/signing.key, created on first start)"`
}

// Policy selects the decision policy.
type Policy struct {
	// File is a YAML policy with CEL rules; empty means the embedded strict default.
	File string `yaml:"file" help:"policy file (YAML with CEL rules; default: the embedded strict policy)"`
}

// Profile configures the pipeline's profile stage: how long an image runs
// in the sandbox and how it is exercised, per repository glob.
type Profile struct {
	// Duration is the time limit of a sandbox run when no Durations entry matches.
	Duration time.Duration `yaml:"duration" help:"how long the profile stage lets an image run in the sandbox"`
	// Durations lists "GLOB=DURATION"; the first matching entry wins.
	Durations []string `yaml:"durations" help:"sandbox time limit for repositories matching GLOB, GLOB=DURATION (repeatable; first match wins)"`
	// HTTPProbes lists "GLOB=PORT/PATH"; every matching entry applies.
	HTTPProbes []string `yaml:"httpProbes" help:"HTTP GET sent inside the sandbox for repositories matching GLOB, GLOB=PORT/PATH (repeatable)"`
	// ProbeCmds lists "GLOB=COMMAND"; every matching entry applies.
	ProbeCmds []string `yaml:"probeCmds" help:"command run inside the sandbox after start-up for repositories matching GLOB, GLOB=COMMAND (repeatable)"`
}

// Approval configures the human approval workflow.
type Approval struct {
	// Required lists "GLOB=N": digests in a repository matching GLOB need N
	// distinct approvers. The first matching entry wins; default 1.
	Required []string `yaml:"required" help:"distinct approvers a repository needs, GLOB=N (repeatable; first match wins; default 1)"`
}

// TLS certificate and key for the main listener.
type TLS struct {
	Cert string `yaml:"cert" help:"TLS certificate file (PEM)"`
	Key  string `yaml:"key" help:"TLS private key file (PEM)"`
}

// Import configures bringing external images in.
type Import struct {
	// Mappings rewrite upstream repository prefixes, "FROM=TO", e.g.
	// "docker.io/library/=library/"; the default private name is <upstream-host>/<path>.
	Mappings []string `yaml:"mappings" help:"upstream prefix rewrite FROM=TO for private repository names (repeatable)"`
	// PullThrough queues an import when a client pulls <upstream-host>/<path>
	// that the registry lacks; the client is refused until it is vetted.
	PullThrough bool `yaml:"pullThrough" help:"queue an import when a client pulls an upstream image the registry lacks"`
	// PullThroughRegistries are the upstream hosts pull-through may import from.
	PullThroughRegistries []string `yaml:"pullThroughRegistries" help:"upstream host pull-through may import from (repeatable)"`
	// InsecureRegistries are upstream hosts reached over plain HTTP by pull-through.
	InsecureRegistries []string `yaml:"insecureRegistries" help:"upstream host reached over plain HTTP by pull-through (repeatable)"`
	// MaxArchive bounds an uploaded archive in bytes.
	MaxArchive int64 `yaml:"maxArchive" help:"largest archive accepted by import, in bytes"`
	// Timeout bounds one import.
	Timeout time.Duration `yaml:"timeout" help:"time limit of one import"`
}

// Pipeline configures the vetting job runner.
type Pipeline struct {
	Workers      int64         `yaml:"workers" help:"vetting jobs run at once"`
	Lease        time.Duration `yaml:"lease" help:"job lease; a crashed worker's job is taken over after it"`
	StageTimeout time.Duration `yaml:"stageTimeout" help:"time limit of one stage run"`
	MaxAttempts  int64         `yaml:"maxAttempts" help:"attempts per stage before the job fails"`
}

// Storage selects the blob storage driver of the registry.
type Storage struct {
	Driver     string     `yaml:"driver" help:"blob storage driver: filesystem or s3"`
	Filesystem Filesystem `yaml:"filesystem"`
	S3         S3         `yaml:"s3"`
}

// Filesystem driver parameters.
type Filesystem struct {
	RootDirectory string `yaml:"rootDirectory" help:"blob directory (default DATA/registry)"`
}

// S3 holds the parameters of an S3-compatible blob store.
type S3 struct {
	Bucket         string `yaml:"bucket" help:"S3 bucket"`
	Region         string `yaml:"region" help:"S3 region"`
	RegionEndpoint string `yaml:"regionEndpoint" help:"S3-compatible endpoint URL (MinIO, Ceph, ...)"`
	AccessKey      string `yaml:"accessKey" help:"S3 access key"`
	SecretKey      string `yaml:"secretKey" help:"S3 secret key"`
	RootDirectory  string `yaml:"rootDirectory" help:"key prefix inside the bucket"`
	Secure         bool   `yaml:"secure" help:"use HTTPS to reach S3"`
	ForcePathStyle bool   `yaml:"forcePathStyle" help:"path-style bucket addressing"`
}

// Store selects the record backend.
type Store struct {
	Driver string `yaml:"driver" help:"store backend: sqlite"`
	DSN    string `yaml:"dsn" help:"store location (sqlite: file path, default DATA/airlock.db)"`
}

// Log settings.
type Log struct {
	Level  string `yaml:"level" help:"log level: debug, info, warn, error"`
	Format string `yaml:"format" help:"log format: text or json"`
}

// Default is the configuration on embedded defaults.
func Default() Config {
	return Config{
		Addr:            "127.0.0.1:5000",
		Data:            "./airlock-data",
		MaxManifestSize: 4 << 20,
		TokenTTL:        15 * time.Minute,
		Import: Import{
			PullThroughRegistries: []string{"docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "gcr.io", "public.ecr.aws", "mcr.microsoft.com"},
			MaxArchive:            16 << 30,
			Timeout:               30 * time.Minute,
		},
		Pipeline:  Pipeline{Workers: 2, Lease: 30 * time.Second, StageTimeout: 30 * time.Minute, MaxAttempts: 3},
		Profile:   Profile{Duration: 20 * time.Second},
		Storage:   Storage{Driver: "filesystem"},
		Store:     Store{Driver: "sqlite"},
		Log:       Log{Level: "info", Format: "text"},
		Admission: Admission{WebhookAddr: ":8443", Mode: "enforce", MaxStale: 10 * time.Second, MaxRequestBytes: 7 << 20},
	}
}

// field is one leaf key of Config.
type field struct {
	path []string // yaml key path, e.g. ["storage","s3","bucket"]
	help string
	typ  reflect.Type
}

func (f field) flagName() string { return strings.Join(mapStrings(f.path, kebab), "-") }
func (f field) envName() string {
	return "AIRLOCK_" + strings.ToUpper(strings.Join(mapStrings(f.path, snake), "_"))
}

func fields() []field {
	var out []field
	var walk func(t reflect.Type, prefix []string)
	walk = func(t reflect.Type, prefix []string) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			key := strings.Split(sf.Tag.Get("yaml"), ",")[0]
			p := append(append([]string{}, prefix...), key)
			if sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, p)
				continue
			}
			out = append(out, field{path: p, help: sf.Tag.Get("help"), typ: sf.Type})
		}
	}
	walk(reflect.TypeOf(Config{}), nil)
	return out
}

// RegisterFlags adds one flag per configuration key to fs (e.g. --storage-s3-bucket).
func RegisterFlags(fs *pflag.FlagSet) {
	for _, f := range fields() {
		help := f.help + " (env " + f.envName() + ")"
		switch f.typ.Kind() {
		case reflect.Slice:
			fs.StringArray(f.flagName(), nil, help)
		case reflect.Bool:
			fs.String(f.flagName(), "", help)
			fs.Lookup(f.flagName()).NoOptDefVal = "true"
		default:
			fs.String(f.flagName(), "", help)
		}
	}
}

// Load builds the effective configuration: defaults, then the YAML file (if
// path is not empty), then AIRLOCK_* variables from env, then flags that were set.
func Load(path string, env func(string) (string, bool), fs *pflag.FlagSet) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && err.Error() != "EOF" {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	root := reflect.ValueOf(&c).Elem()
	for _, f := range fields() {
		v := lookup(root, f.path)
		if env != nil {
			if s, ok := env(f.envName()); ok {
				var err error
				if f.typ.Kind() == reflect.Slice {
					err = set(v, splitList(s), false)
				} else {
					err = set(v, []string{s}, false)
				}
				if err != nil {
					return c, fmt.Errorf("%s: %w", f.envName(), err)
				}
			}
		}
		if fs != nil {
			fl := fs.Lookup(f.flagName())
			if fl != nil && fl.Changed {
				var vals []string
				if sv, ok := fl.Value.(pflag.SliceValue); ok {
					vals = sv.GetSlice()
				} else {
					vals = []string{fl.Value.String()}
				}
				if err := set(v, vals, false); err != nil {
					return c, fmt.Errorf("--%s: %w", f.flagName(), err)
				}
			}
		}
	}
	return c, c.finish()
}

// Finish fills derived defaults of a configuration built in code and validates it.
func Finish(c Config) (Config, error) { return c, c.finish() }

// finish fills derived defaults and validates.
func (c *Config) finish() error {
	if c.Data == "" {
		return fmt.Errorf("data directory must not be empty")
	}
	if c.RegistryHost == "" {
		c.RegistryHost = c.Addr
	}
	if c.TokenKeyFile == "" {
		c.TokenKeyFile = filepath.Join(c.Data, "token.key")
	}
	if c.Storage.Filesystem.RootDirectory == "" {
		c.Storage.Filesystem.RootDirectory = filepath.Join(c.Data, "registry")
	}
	if c.Store.DSN == "" && c.Store.Driver == "sqlite" {
		c.Store.DSN = filepath.Join(c.Data, "airlock.db")
	}
	switch c.Storage.Driver {
	case "filesystem":
	case "s3":
		if c.Storage.S3.Bucket == "" {
			return fmt.Errorf("storage driver s3 needs storage.s3.bucket")
		}
	default:
		return fmt.Errorf("unknown storage driver %q (want filesystem or s3)", c.Storage.Driver)
	}
	if c.Store.Driver != "sqlite" {
		return fmt.Errorf("unknown store driver %q (want sqlite)", c.Store.Driver)
	}
	if c.MaxManifestSize <= 0 {
		return fmt.Errorf("maxManifestSize must be positive")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return fmt.Errorf("tls needs both cert and key")
	}
	for _, m := range c.Import.Mappings {
		if from, to, ok := strings.Cut(m, "="); !ok || from == "" || to == "" {
			return fmt.Errorf("import mapping %q: want FROM=TO, e.g. docker.io/library/=library/", m)
		}
	}
	if c.Pipeline.Workers <= 0 || c.Pipeline.MaxAttempts <= 0 || c.Pipeline.Lease <= 0 || c.Pipeline.StageTimeout <= 0 {
		return fmt.Errorf("pipeline workers, maxAttempts, lease and stageTimeout must be positive")
	}
	if c.Profile.Duration <= 0 || c.Profile.Duration > time.Hour {
		return fmt.Errorf("profile.duration must be more than 0 and at most 1h, not %s", c.Profile.Duration)
	}
	for _, d := range c.Profile.Durations {
		g, v, ok := strings.Cut(d, "=")
		dur, err := time.ParseDuration(v)
		if !ok || g == "" || err != nil || dur <= 0 || dur > time.Hour {
			return fmt.Errorf("profile.durations %q: want GLOB=DURATION up to 1h, e.g. 'web/**=45s'", d)
		}
	}
	for _, l := range [][]string{c.Profile.HTTPProbes, c.Profile.ProbeCmds} {
		for _, e := range l {
			if g, v, ok := strings.Cut(e, "="); !ok || g == "" || strings.TrimSpace(v) == "" {
				return fmt.Errorf("profile probe %q: want GLOB=PORT/PATH (httpProbes) or GLOB=COMMAND (probeCmds)", e)
			}
		}
	}
	for _, r := range c.Approval.Required {
		g, n, ok := strings.Cut(r, "=")
		k, err := strconv.Atoi(n)
		if !ok || g == "" || err != nil || k < 1 || k > 100 {
			return fmt.Errorf("approval.required %q: want GLOB=N with N from 1 to 100, e.g. 'prod/**=2'", r)
		}
	}
	if err := c.Admission.finish(c.RegistryHost); err != nil {
		return err
	}
	for _, u := range c.ForeignLayerURLs {
		if _, err := regexp.Compile(u); err != nil {
			return fmt.Errorf("foreignLayerUrls %q: %w", u, err)
		}
	}
	for _, g := range c.AllowUnvetted {
		if _, err := filepath.Match(strings.ReplaceAll(g, "**", "*"), ""); err != nil {
			return fmt.Errorf("allowUnvetted %q: %w", g, err)
		}
	}
	if c.Alerts.Webhook != "" {
		if u, err := url.Parse(c.Alerts.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("alerts.webhook %q: want an http or https URL", c.Alerts.Webhook)
		}
	}
	return nil
}

func (a *Admission) finish(registryHost string) error {
	if len(a.RegistryHosts) == 0 {
		a.RegistryHosts = []string{registryHost}
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return fmt.Errorf("admission needs both tlsCert and tlsKey, or neither for a generated certificate")
	}
	modeOK := func(m string) bool { return m == "enforce" || m == "warn" || m == "dry-run" }
	if !modeOK(a.Mode) {
		return fmt.Errorf("admission mode %q: want enforce, warn or dry-run", a.Mode)
	}
	for _, e := range a.Namespaces {
		g, m, ok := strings.Cut(e, "=")
		if !ok || g == "" || !modeOK(m) {
			return fmt.Errorf("admission namespaces %q: want GLOB=MODE with MODE enforce, warn or dry-run, e.g. 'staging-*=warn'", e)
		}
	}
	if a.MaxStale <= 0 || a.MaxRequestBytes <= 0 {
		return fmt.Errorf("admission maxStale and maxRequestBytes must be positive")
	}
	return nil
}

// YAML renders the configuration as a config file would hold it.
func (c Config) YAML() string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(c)
	return b.String()
}

func lookup(v reflect.Value, path []string) reflect.Value {
	for _, key := range path {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == key {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

func set(v reflect.Value, vals []string, _ bool) error {
	if v.Kind() == reflect.Slice {
		v.Set(reflect.ValueOf(append([]string{}, vals...)))
		return nil
	}
	s := vals[len(vals)-1]
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int64, reflect.Int:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func mapStrings(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

// kebab turns "regionEndpoint" into "region-endpoint" and "tokenTTL" into "token-ttl".
func kebab(s string) string { return sep(s, '-') }
func snake(s string) string { return sep(s, '_') }

func sep(s string, c rune) string {
	r := []rune(s)
	var b strings.Builder
	for i, ch := range r {
		if unicode.IsUpper(ch) && i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			b.WriteRune(c)
		}
		b.WriteRune(unicode.ToLower(ch))
	}
	return b.String()
}
