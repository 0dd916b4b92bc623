package detect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/rules"
)

// ruleDetector matches the content rules (builtin YAML plus --rules DIR)
// against every file and the image config.
type ruleDetector struct {
	set    *rules.Set
	digest string
}

func newRules(cfg Config) (scan.Detector, error) {
	rs, err := rules.Load(cfg.RulesDirs...)
	if err != nil {
		return nil, err
	}
	set, err := rules.Compile(rs)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(rs)
	sum := sha256.Sum256(b)
	return &ruleDetector{set: set, digest: "sha256:" + hex.EncodeToString(sum[:])}, nil
}

// RulesInfo reports how many rules a detector list runs and their digest.
func RulesInfo(ds []scan.Detector) (int, string) {
	for _, d := range ds {
		if r, ok := d.(*ruleDetector); ok {
			return len(r.set.Rules), r.digest
		}
	}
	return 0, ""
}

func (d *ruleDetector) Name() string { return "rules" }

func (d *ruleDetector) Want(f *scan.File) bool { return f.Size > 0 }

func (d *ruleDetector) Content(ctx context.Context, f *scan.File, r io.Reader) ([]scan.Finding, error) {
	hits, err := d.set.Scan(f.Path, f.Size, r, 1<<62)
	if err != nil {
		return nil, err
	}
	var out []scan.Finding
	for _, h := range hits {
		out = append(out, hitFinding(h, scan.Location{Path: f.Path, Line: h.Line, Layer: f.Layer}))
	}
	return out, nil
}

func (d *ruleDetector) Image(ctx context.Context, im *scan.Image) ([]scan.Finding, error) {
	var out []scan.Finding
	for _, t := range im.ConfigTexts() {
		for _, h := range d.set.ScanText(t.Where, t.Text) {
			out = append(out, hitFinding(h, scan.Location{Path: t.Where}))
		}
	}
	return out, nil
}

func hitFinding(h rules.Hit, loc scan.Location) scan.Finding {
	ev := h.Excerpt
	if h.Rule.Redact || h.Rule.Type == scan.TypeSecret {
		ev = scan.Redact(h.Match)
	}
	return scan.Finding{
		Type: h.Rule.Type, Detector: "rules", Severity: h.Rule.Severity, ID: h.Rule.ID, Title: h.Rule.Title,
		Location: loc, Evidence: ev,
	}
}
