package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// Reevaluation is the policy's answer to new findings on an approved digest
// (after `airlock db import` of newer advisories): when the verdict over the
// new evidence is Revoke or worse, a revocation is scheduled for Grace
// later, so owners can waive, fix or accept it before the registry stops
// serving the digest. Revoke empty: alert only, never revoke.
type Reevaluation struct {
	Revoke Effect        `json:"revoke,omitempty"`
	Grace  time.Duration `json:"grace"`
}

// reevaluationFile is the `reevaluation:` section of a policy file.
type reevaluationFile struct {
	Revoke string `yaml:"revoke"` // deny, review or never
	Grace  string `yaml:"grace"`  // Go duration or Nd
}

// DefaultGrace is the grace period when the policy names none.
const DefaultGrace = 72 * time.Hour

const maxGrace = 366 * 24 * time.Hour

func (r reevaluationFile) compile() (Reevaluation, error) {
	out := Reevaluation{Grace: DefaultGrace}
	switch r.Revoke {
	case "", "never":
	case string(Deny), string(Review):
		out.Revoke = Effect(r.Revoke)
	default:
		return out, fmt.Errorf("reevaluation.revoke %q: want deny, review or never", r.Revoke)
	}
	if r.Grace != "" {
		d, err := parseGrace(r.Grace)
		if err != nil {
			return out, err
		}
		out.Grace = d
	}
	return out, nil
}

func parseGrace(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err = fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n {
			d = time.Duration(days) * 24 * time.Hour
		} else {
			err = errors.New("not a number of days")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 || d > maxGrace {
		return 0, fmt.Errorf("reevaluation.grace %q: want a duration from 0 to 366d, such as 72h or 7d", s)
	}
	return d, nil
}

// Calls reports whether verdict v calls for revoking an approved digest.
func (r Reevaluation) Calls(v Verdict) bool {
	return r.Revoke != "" && v.Effect.rank() >= r.Revoke.rank()
}

// FindingKey names a finding across matches: advisory, package and image.
func FindingKey(f map[string]any) string {
	id, _ := f["id"].(string)
	img, _ := f["image"].(string)
	pkg := ""
	if p, ok := f["package"].(map[string]any); ok {
		pkg, _ = p["name"].(string)
	}
	return id + "|" + pkg + "|" + img
}

// overlay applies to the scan stage's findings what happened since: the
// newest re-evaluation's vulnerability findings replace the scan's (the
// newer advisory data is authoritative, withdrawn advisories drop out), and
// waivers active at now mark the findings they cover.
func overlay(ctx context.Context, st store.Store, ev *Evidence, now time.Time) error {
	re, err := st.LatestReevaluation(ctx, ev.Digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		var vulns []map[string]any
		if err := json.Unmarshal(re.Findings, &vulns); err != nil {
			return fmt.Errorf("re-evaluation %d of %s: %w", re.ID, ev.Digest, err)
		}
		kept := ev.Findings[:0]
		for _, f := range ev.Findings {
			if f["type"] != "vulnerability" {
				kept = append(kept, f)
			}
		}
		newKeys := map[string]bool{}
		for _, k := range re.New {
			newKeys[k] = true
		}
		for _, f := range vulns {
			if _, ok := f["fixed"]; !ok {
				f["fixed"] = ""
			}
			f["reevaluated"] = re.Snapshot
			f["new"] = newKeys[FindingKey(f)]
			kept = append(kept, f)
		}
		ev.Findings = kept
		ev.Reevaluation = &ReevaluationFacts{ID: re.ID, Snapshot: re.Snapshot, At: re.At.UTC().Format(time.RFC3339), New: len(re.New)}
	}
	ws, err := st.Waivers(ctx, store.WaiverFilter{Digest: ev.Digest, Repositories: ev.Image.Repositories, ActiveAt: &now})
	if err != nil {
		return err
	}
	for _, f := range ev.Findings {
		f["waived"] = false
		id, _ := f["id"].(string)
		var aliases []string
		if as, ok := f["aliases"].([]any); ok {
			for _, a := range as {
				if s, ok := a.(string); ok {
					aliases = append(aliases, s)
				}
			}
		}
		pkg := ""
		if p, ok := f["package"].(map[string]any); ok {
			pkg, _ = p["name"].(string)
		}
		for _, w := range ws {
			if w.Active(now) && w.Covers(ev.Digest, ev.Image.Repositories, id, aliases, pkg) {
				f["waived"] = true
				f["waiver"] = map[string]any{"id": w.ID, "owner": w.Owner, "reason": w.Reason, "expires": w.Expires.UTC().Format(time.RFC3339)}
				break
			}
		}
	}
	return nil
}

// ReevaluationFacts name the re-evaluation whose findings the evidence carries.
type ReevaluationFacts struct {
	ID       int64  `json:"id"`
	Snapshot string `json:"snapshot"`
	At       string `json:"at"`
	New      int    `json:"new"`
}

// activeFindings is findings without the waived ones: what rules see by default.
func activeFindings(vars map[string]any) map[string]any {
	fs, ok := vars["findings"].([]any)
	if !ok {
		return vars
	}
	out := make(map[string]any, len(vars))
	for k, v := range vars {
		out[k] = v
	}
	active := []any{}
	for _, f := range fs {
		if m, ok := f.(map[string]any); ok && m["waived"] == true {
			continue
		}
		active = append(active, f)
	}
	out["findings"] = active
	return out
}
