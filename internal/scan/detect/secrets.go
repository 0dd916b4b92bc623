package detect

import (
	"context"
	"fmt"
	"io"
	"path"
	"reflect"
	"strings"

	"github.com/google/osv-scalibr/veles"
	"github.com/google/osv-scalibr/veles/secrets/anthropicapikey"
	"github.com/google/osv-scalibr/veles/secrets/awsaccesskey"
	"github.com/google/osv-scalibr/veles/secrets/azurestorageaccountaccesskey"
	"github.com/google/osv-scalibr/veles/secrets/digitaloceanapikey"
	"github.com/google/osv-scalibr/veles/secrets/dockerhubpat"
	"github.com/google/osv-scalibr/veles/secrets/gcpapikey"
	"github.com/google/osv-scalibr/veles/secrets/gcpsak"
	"github.com/google/osv-scalibr/veles/secrets/github"
	"github.com/google/osv-scalibr/veles/secrets/gitlabpat"
	"github.com/google/osv-scalibr/veles/secrets/huggingfaceapikey"
	"github.com/google/osv-scalibr/veles/secrets/npmjsaccesstoken"
	"github.com/google/osv-scalibr/veles/secrets/openai"
	"github.com/google/osv-scalibr/veles/secrets/privatekey"
	"github.com/google/osv-scalibr/veles/secrets/pypiapitoken"
	"github.com/google/osv-scalibr/veles/secrets/slacktoken"
	"github.com/google/osv-scalibr/veles/secrets/stripeapikeys"

	"github.com/airlock-dev/airlock/internal/scan"
)

// secretDetector runs osv-scalibr's maintained secret detectors (Veles)
// over file content and the image config. Nothing is validated against the
// network: Airlock works offline.
type secretDetector struct{ engine *veles.DetectionEngine }

func newSecrets(Config) (scan.Detector, error) {
	ds := []veles.Detector{
		privatekey.NewDetector(), awsaccesskey.NewDetector(), gcpsak.NewDetector(), gcpapikey.NewDetector(),
		github.NewClassicPATDetector(), github.NewFineGrainedPATDetector(), github.NewOAuthTokenDetector(),
		github.NewAppS2STokenDetector(), github.NewAppU2SDetector(), github.NewAppRefreshTokenDetector(),
		slacktoken.NewAppLevelTokenDetector(), slacktoken.NewAppConfigAccessTokenDetector(), slacktoken.NewAppConfigRefreshTokenDetector(),
		gitlabpat.NewDetector(), npmjsaccesstoken.NewDetector(), pypiapitoken.NewDetector(), dockerhubpat.NewDetector(),
		huggingfaceapikey.NewDetector(), openai.NewDetector(), anthropicapikey.NewDetector(), stripeapikeys.NewSecretKeyDetector(),
		digitaloceanapikey.NewDetector(), azurestorageaccountaccesskey.NewDetector(),
	}
	e, err := veles.NewDetectionEngine(ds)
	if err != nil {
		return nil, err
	}
	return &secretDetector{engine: e}, nil
}

func (d *secretDetector) Name() string { return "secrets" }

// Want skips executables, files too large to be configuration, formats
// that cannot hold a readable secret, and the trees of installed packages
// (documentation, language libraries, package metadata), where example keys
// are common and a planted secret would be found by the rules anyway.
func (d *secretDetector) Want(f *scan.File) bool {
	if f.ELF || f.Size == 0 || f.Size > 16<<20 {
		return false
	}
	for _, p := range skipSecretDirs {
		if strings.HasPrefix(f.Path, p) {
			return false
		}
	}
	for _, p := range skipSecretParts {
		if strings.Contains(f.Path, p) {
			return false
		}
	}
	ext := path.Ext(f.Path)
	return !skipSecretExt[ext]
}

var skipSecretDirs = []string{"/usr/share/", "/usr/lib/", "/usr/include/", "/lib/", "/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/", "/usr/src/", "/proc/", "/sys/"}

var skipSecretParts = []string{"/site-packages/", "/dist-packages/", "/node_modules/", "/__pycache__/", "/.cache/", "/go/pkg/mod/"}

var skipSecretExt = map[string]bool{
	".so": true, ".a": true, ".o": true, ".pyc": true, ".pyo": true, ".class": true, ".jar": true, ".war": true, ".whl": true,
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".ico": true, ".svg": true, ".ttf": true, ".otf": true, ".woff": true, ".woff2": true,
	".gz": true, ".xz": true, ".bz2": true, ".zst": true, ".zip": true, ".tar": true, ".tgz": true, ".mo": true, ".db": true, ".sqlite": true,
}

func (d *secretDetector) Content(ctx context.Context, f *scan.File, r io.Reader) ([]scan.Finding, error) {
	secrets, err := d.engine.Detect(ctx, r)
	if err != nil {
		return nil, err
	}
	return d.findings(secrets, scan.Location{Path: f.Path, Layer: f.Layer}), nil
}

func (d *secretDetector) Image(ctx context.Context, im *scan.Image) ([]scan.Finding, error) {
	var out []scan.Finding
	for _, t := range im.ConfigTexts() {
		secrets, err := d.engine.Detect(ctx, strings.NewReader(t.Text))
		if err != nil {
			return nil, err
		}
		out = append(out, d.findings(secrets, scan.Location{Path: t.Where})...)
	}
	return out, nil
}

func (d *secretDetector) findings(secrets []veles.Secret, loc scan.Location) []scan.Finding {
	var out []scan.Finding
	seen := map[string]bool{}
	for _, s := range secrets {
		kind, value, sev := describeSecret(s)
		key := kind + "\x00" + value
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, scan.Finding{
			Type: scan.TypeSecret, Detector: "secrets", Severity: sev,
			ID: "AIRLOCK-SECRET-" + strings.ToUpper(strings.ReplaceAll(kind, " ", "-")), Title: strings.ToUpper(kind[:1]) + kind[1:] + " in the image",
			Location: loc, Evidence: scan.Redact(value),
		})
	}
	return out
}

// describeSecret names a Veles secret and picks the part to show redacted.
func describeSecret(s veles.Secret) (kind, value, severity string) {
	switch v := s.(type) {
	case privatekey.PrivateKey:
		return "private key", v.Block, "critical"
	case awsaccesskey.Credentials:
		return "aws access key", v.AccessID + ":" + v.Secret, "critical"
	case gcpsak.GCPSAK:
		return "gcp service account key", v.PrivateKeyID, "critical"
	}
	// Every other Veles secret type is a struct whose first string field is
	// the token itself.
	rv := reflect.ValueOf(s)
	name := strings.ToLower(rv.Type().Name())
	if name == "" {
		name = "secret"
	}
	kind = splitCamel(rv.Type().Name())
	if rv.Kind() == reflect.Struct {
		for i := 0; i < rv.NumField(); i++ {
			if f := rv.Field(i); f.Kind() == reflect.String && f.String() != "" {
				return kind, f.String(), "high"
			}
		}
	}
	return kind, fmt.Sprint(s), "high"
}

func splitCamel(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' && !(s[i-1] >= 'A' && s[i-1] <= 'Z') {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToLower(b.String())
}
