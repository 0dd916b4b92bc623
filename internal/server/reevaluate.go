package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/stage"
	"github.com/airlock-dev/airlock/internal/scan/vulndb"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// DecisionMetrics count what re-evaluation and governed revocation did.
type DecisionMetrics struct {
	Alerts      *prometheus.CounterVec // by kind
	Revocations *prometheus.CounterVec // by outcome: scheduled, executed, cancelled
	Reevaluated prometheus.Counter     // digests re-matched against new advisory data
}

// NewDecisionMetrics registers the decision metrics with reg.
func NewDecisionMetrics(reg prometheus.Registerer) *DecisionMetrics {
	m := &DecisionMetrics{
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_alerts_total",
			Help: "Alerts raised: new findings on approved digests, scheduled, executed and cancelled revocations."}, []string{"kind"}),
		Revocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_scheduled_revocations_total",
			Help: "Governed revocations by outcome: scheduled, executed, cancelled."}, []string{"outcome"}),
		Reevaluated: prometheus.NewCounter(prometheus.CounterOpts{Name: "airlock_reevaluated_digests_total",
			Help: "Digests whose stored inventory was matched again against new advisory data."}),
	}
	if reg != nil {
		reg.MustRegister(m.Alerts, m.Revocations, m.Reevaluated)
	}
	return m
}

// Alert kinds.
const (
	AlertNewFindings         = "new-findings"
	AlertRevoked             = "revoked"
	AlertRevocationCancelled = "revocation-cancelled"
	AlertWaiverExpired       = "waiver-expired"
)

// Alert is what the log, the webhook and the audit log receive when
// something changes about an approved digest without a human asking.
type Alert struct {
	Kind         string                     `json:"kind"`
	Digest       string                     `json:"digest"`
	State        store.State                `json:"state"`
	Repositories []string                   `json:"repositories"`
	Message      string                     `json:"message"`
	Snapshot     string                     `json:"snapshot,omitempty"`
	Findings     []AlertFinding             `json:"findings,omitempty"`
	Verdict      policy.Effect              `json:"verdict,omitempty"`
	Revocation   *store.ScheduledRevocation `json:"revocation,omitempty"`
	At           time.Time                  `json:"at"`
}

// AlertFinding is one new finding named in an alert.
type AlertFinding struct {
	ID       string `json:"id"`
	Package  string `json:"package"`
	Version  string `json:"version"`
	Severity string `json:"severity"`
	Fixed    string `json:"fixed,omitempty"`
	Image    string `json:"image"`
}

// ReevaluationReport is what one re-evaluation did.
type ReevaluationReport struct {
	Snapshot string              `json:"snapshot"`
	Checked  int                 `json:"checked"` // digests with stored scan evidence
	Images   []ReevaluatedDigest `json:"images"`  // those whose findings were matched again
	Skipped  []SkippedDigest     `json:"skipped"`
	Alerts   int                 `json:"alerts"`
	Executed []store.Image       `json:"executed,omitempty"` // revocations whose grace period had ended
}

// ReevaluatedDigest is one digest matched again.
type ReevaluatedDigest struct {
	Digest     string                     `json:"digest"`
	State      store.State                `json:"state"`
	Findings   int                        `json:"findings"` // vulnerability findings now
	New        []AlertFinding             `json:"new"`
	Verdict    policy.Effect              `json:"verdict"`
	Revocation *store.ScheduledRevocation `json:"revocation,omitempty"`
}

// SkippedDigest is a digest that could not be matched again, and why.
type SkippedDigest struct {
	Digest string `json:"digest"`
	Reason string `json:"reason"`
}

// maxReport bounds a stored scan report read back for re-matching.
const maxReport = 256 << 20

func (d *Decider) now() time.Time {
	if now := d.clock.Load(); now != nil {
		return (*now)().UTC()
	}
	return time.Now().UTC()
}

// OpenAdvisories opens the advisory database in the data directory, or
// says how to import one.
func OpenAdvisories(ctx context.Context, data string) (*vulndb.DB, error) {
	if _, err := os.Stat(filepath.Join(data, vulndb.FileName)); err != nil {
		return nil, fmt.Errorf("no advisory database in %s: import one with airlock db import", data)
	}
	return vulndb.Open(ctx, data)
}

// Reevaluate matches the stored inventory (the scan stage's report, read
// back from the registry: no image is pulled) of every approved and
// quarantined digest against m. A digest whose advisory snapshot changed
// gets a re-evaluation record; new findings on an approved digest raise an
// alert and, when the policy's reevaluation section calls for it, a
// revocation scheduled after the grace period. An approved digest stays
// approved until then: it never drops back to pending.
func (d *Decider) Reevaluate(ctx context.Context, m scan.Matcher, actor string) (ReevaluationReport, error) {
	d.reevalMu.Lock() // two imports at once must not alert twice for one finding
	defer d.reevalMu.Unlock()
	rep := ReevaluationReport{Snapshot: m.Snapshot(), Images: []ReevaluatedDigest{}, Skipped: []SkippedDigest{}}
	for _, state := range []store.State{store.Approved, store.Quarantined} {
		imgs, err := d.Store.Images(ctx, store.ImageFilter{State: state})
		if err != nil {
			return rep, err
		}
		for _, img := range imgs {
			if img.Subject != "" {
				continue // attestations, SBOMs and reports are judged with their subject
			}
			ev, ok, err := d.scanEvidence(ctx, img.Digest)
			if err == nil && !ok {
				continue // children of an index (scanned with it) and pushed digests
			}
			rep.Checked++
			var r *ReevaluatedDigest
			if err == nil {
				r, err = d.reevaluate(ctx, m, img, ev, actor)
			}
			if err != nil {
				var skip *skipError
				if errors.As(err, &skip) {
					d.Log.Warn("re-evaluation skipped", "digest", img.Digest, "reason", skip.reason)
					rep.Skipped = append(rep.Skipped, SkippedDigest{Digest: img.Digest, Reason: skip.reason})
					continue
				}
				return rep, err
			}
			if r == nil {
				continue
			}
			if len(r.New) > 0 && r.State == store.Approved {
				rep.Alerts++
			}
			rep.Images = append(rep.Images, *r)
		}
	}
	executed, err := d.ExecuteDue(ctx)
	rep.Executed = executed
	return rep, err
}

type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

// scanEvidence is the evidence of the newest finished scan of digest.
func (d *Decider) scanEvidence(ctx context.Context, digest string) (stage.Evidence, bool, error) {
	jobs, err := d.Store.Jobs(ctx, store.JobFilter{Digest: digest, Limit: 20})
	if err != nil {
		return stage.Evidence{}, false, err
	}
	for _, j := range jobs {
		for _, s := range j.Stages {
			if s.Name != "scan" || s.Status != store.StageDone || len(s.Evidence) == 0 {
				continue
			}
			var ev stage.Evidence
			if err := json.Unmarshal(s.Evidence, &ev); err != nil {
				return ev, false, &skipError{reason: fmt.Sprintf("the scan evidence of %s (job %d) is not readable (%v); scan the image again", digest, j.ID, err)}
			}
			return ev, true, nil
		}
	}
	return stage.Evidence{}, false, nil
}

// artifactBlob reads the one blob of an artifact Airlock stored (an SBOM or
// scan report) and checks it is the blob the evidence names.
func (d *Decider) artifactBlob(ctx context.Context, repo, manifest, want string, limit int64) ([]byte, error) {
	img, err := d.Registry.Image(ctx, repo, manifest)
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(ls) != 1 {
		return nil, fmt.Errorf("artifact %s in %s has %d blobs; want 1", manifest, repo, len(ls))
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("artifact %s in %s is larger than %d bytes", manifest, repo, limit)
	}
	if want != "" {
		if h, _, _ := v1.SHA256(bytes.NewReader(b)); h.String() != want {
			return nil, fmt.Errorf("artifact %s in %s holds %s, not the %s the evidence names", manifest, repo, h, want)
		}
	}
	return b, nil
}

// storedReport reads back the scan report of one scanned image.
func (d *Decider) storedReport(ctx context.Context, ie stage.ImageEvidence) (*scan.Report, error) {
	var lastErr error
	for _, a := range ie.Artifacts {
		if a.ArtifactType != scan.MediaTypeReport {
			continue
		}
		b, err := d.artifactBlob(ctx, a.Repository, a.Manifest, a.Blob, maxReport)
		if err != nil {
			lastErr = err
			continue
		}
		var r scan.Report
		if err := json.Unmarshal(b, &r); err != nil {
			lastErr = fmt.Errorf("scan report %s: %w", a.Blob, err)
			continue
		}
		if r.Image.Digest != ie.Digest {
			lastErr = fmt.Errorf("scan report %s is about %s, not %s", a.Blob, r.Image.Digest, ie.Digest)
			continue
		}
		return &r, nil
	}
	if lastErr == nil {
		lastErr = errors.New("the scan stage attached no report")
	}
	return nil, lastErr
}

func (d *Decider) reevaluate(ctx context.Context, m scan.Matcher, img store.Image, ev stage.Evidence, actor string) (*ReevaluatedDigest, error) {
	previous := ev.AdvisoryDB
	var known []map[string]any
	for _, f := range ev.Findings {
		if f.Type == scan.TypeVulnerability {
			known = append(known, findingMap(f))
		}
	}
	last, err := d.Store.LatestReevaluation(ctx, img.Digest)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		previous = last.Snapshot
		known = nil
		if err := json.Unmarshal(last.Findings, &known); err != nil {
			return nil, fmt.Errorf("re-evaluation %d of %s: %w", last.ID, img.Digest, err)
		}
	}
	if previous == m.Snapshot() {
		// Matched against this very data already. If that run stopped
		// (a crash) between recording the match and scheduling the
		// revocation the policy asks for, finish it now.
		if last.ID != 0 && img.State == store.Approved && len(last.New) > 0 {
			return nil, d.finishReevaluation(ctx, img, last, actor)
		}
		return nil, nil
	}
	var now []map[string]any
	for _, ie := range ev.Images {
		r, err := d.storedReport(ctx, ie)
		if err != nil {
			return nil, &skipError{reason: fmt.Sprintf("the stored scan report of %s cannot be read (%v); scan the image again", ie.Digest, err)}
		}
		vs, err := m.Match(ctx, r.Packages)
		if err != nil {
			return nil, fmt.Errorf("match %s: %w", ie.Digest, err)
		}
		for _, v := range vs {
			now = append(now, findingMap(stage.EvidenceFinding{Finding: scan.VulnerabilityFinding(v), Image: ie.Digest}))
		}
	}
	if d.Metrics != nil {
		d.Metrics.Reevaluated.Inc()
	}
	before := map[string]bool{}
	for _, f := range known {
		before[policy.FindingKey(f)] = true
	}
	out := &ReevaluatedDigest{Digest: img.Digest, State: img.State, Findings: len(now), New: []AlertFinding{}}
	var newKeys []string
	for _, f := range now {
		if k := policy.FindingKey(f); !before[k] && f["suppressed"] == nil {
			newKeys = append(newKeys, k)
			out.New = append(out.New, alertFinding(f))
		}
	}
	sort.Strings(newKeys)
	if now == nil {
		now = []map[string]any{}
	}
	doc, err := json.Marshal(now)
	if err != nil {
		return nil, err
	}
	re, err := d.Store.RecordReevaluation(ctx, store.Reevaluation{Digest: img.Digest, Snapshot: m.Snapshot(), Findings: doc, New: newKeys, Actor: actor})
	if err != nil {
		return nil, err
	}
	v, _, err := d.Verdict(ctx, img.Digest)
	if err != nil {
		return nil, err
	}
	out.Verdict = v.Effect
	if img.State == store.Approved {
		// The vuln attestation says what is known now; the approval stays as signed.
		if err := d.Reattest(ctx, img); err != nil {
			d.Log.Error("sign the scan attestations again", "digest", img.Digest, "err", err)
		}
	}
	if img.State != store.Approved || len(newKeys) == 0 {
		return out, nil
	}
	out.Revocation, err = d.alertNewFindings(ctx, img, re, out.New, v, actor)
	return out, err
}

// alertNewFindings raises the alert for new findings on an approved digest
// and schedules the revocation the policy's verdict v calls for.
func (d *Decider) alertNewFindings(ctx context.Context, img store.Image, re store.Reevaluation, news []AlertFinding, v policy.Verdict, actor string) (*store.ScheduledRevocation, error) {
	alert := Alert{Kind: AlertNewFindings, Digest: img.Digest, State: img.State, Repositories: img.Repositories, Snapshot: re.Snapshot,
		Findings: news, Verdict: v.Effect, At: d.now(),
		Message: fmt.Sprintf("%d new finding(s) on approved %s under advisory snapshot %s; the policy now says %s", len(re.New), img.Digest, short(re.Snapshot), v.Effect)}
	var scheduled *store.ScheduledRevocation
	if d.Policy.Reevaluation.Calls(v) {
		sr, err := d.Store.ScheduleRevocation(ctx, store.ScheduledRevocation{
			Digest: img.Digest, Due: d.now().Add(d.Policy.Reevaluation.Grace), Actor: actor, Reevaluation: re.ID,
			Reason: fmt.Sprintf("new findings %s under advisory snapshot %s: %s", strings.Join(ids(news), ", "), short(re.Snapshot), policy.RejectReason(v)),
		})
		switch {
		case errors.Is(err, store.ErrExists):
		case errors.Is(err, store.ErrInvalidTransition):
			// Revoked or back in quarantine meanwhile: nothing left to revoke.
			alert.Message += "; it is no longer approved"
			d.raise(ctx, alert)
			return nil, nil
		case err != nil:
			return nil, err
		default:
			if d.Metrics != nil {
				d.Metrics.Revocations.WithLabelValues(store.RevocationScheduled).Inc()
			}
		}
		scheduled, alert.Revocation = &sr, &sr
		alert.Message += fmt.Sprintf("; it will be revoked at %s unless the findings are waived or the revocation is cancelled", sr.Due.Format(time.RFC3339))
	}
	d.raise(ctx, alert)
	return scheduled, nil
}

// finishReevaluation completes a recorded re-evaluation whose revocation
// was never scheduled (the run stopped in between): if no revocation names
// it and the policy calls for one, it is scheduled and alerted now.
func (d *Decider) finishReevaluation(ctx context.Context, img store.Image, re store.Reevaluation, actor string) error {
	rs, err := d.Store.Revocations(ctx, store.RevocationFilter{Digest: img.Digest})
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Reevaluation == re.ID {
			return nil
		}
	}
	v, _, err := d.Verdict(ctx, img.Digest)
	if err != nil || !d.Policy.Reevaluation.Calls(v) {
		return err
	}
	var news []AlertFinding
	var fs []map[string]any
	_ = json.Unmarshal(re.Findings, &fs)
	isNew := map[string]bool{}
	for _, k := range re.New {
		isNew[k] = true
	}
	for _, f := range fs {
		if isNew[policy.FindingKey(f)] {
			news = append(news, alertFinding(f))
		}
	}
	_, err = d.alertNewFindings(ctx, img, re, news, v, actor)
	return err
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func ids(fs []AlertFinding) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		if !seen[f.ID] {
			seen[f.ID] = true
			out = append(out, f.ID)
		}
	}
	return out
}

func findingMap(f stage.EvidenceFinding) map[string]any {
	b, _ := json.Marshal(f)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func alertFinding(f map[string]any) AlertFinding {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	a := AlertFinding{ID: str(f, "id"), Severity: str(f, "severity"), Fixed: str(f, "fixed"), Image: str(f, "image")}
	if p, ok := f["package"].(map[string]any); ok {
		a.Package, a.Version = str(p, "name"), str(p, "version")
	}
	return a
}

// raise sends an alert to the log, the metrics, the audit log and the webhook.
func (d *Decider) raise(ctx context.Context, a Alert) {
	if a.At.IsZero() {
		a.At = d.now()
	}
	if a.Repositories == nil {
		a.Repositories = []string{}
	}
	d.Log.Warn("alert", "kind", a.Kind, "digest", a.Digest, "message", a.Message)
	if d.Metrics != nil {
		d.Metrics.Alerts.WithLabelValues(a.Kind).Inc()
	}
	body, _ := json.Marshal(a)
	delivered := ""
	if d.Webhook != "" {
		if err := d.post(ctx, body); err != nil {
			d.Log.Error("alert webhook", "url", d.Webhook, "digest", a.Digest, "err", err)
			delivered = err.Error()
		} else {
			delivered = "delivered"
		}
	}
	detail, _ := json.Marshal(map[string]any{"kind": a.Kind, "message": a.Message, "webhook": delivered})
	if _, err := d.Store.Audit(context.WithoutCancel(ctx), store.AuditEntry{Actor: "airlock", Action: "alert." + a.Kind, Subject: a.Digest, Detail: detail}); err != nil {
		d.Log.Error("audit alert", "digest", a.Digest, "err", err)
	}
}

func (d *Decider) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock/"+Version)
	c := d.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("alert webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert webhook answered %s", resp.Status)
	}
	return nil
}

// ExecuteDue carries out the scheduled revocations whose grace period has
// ended. Each is judged again first: one whose digest is no longer approved,
// or for which the policy no longer calls (a waiver, a withdrawn advisory),
// is cancelled instead, with the reason recorded.
func (d *Decider) ExecuteDue(ctx context.Context) ([]store.Image, error) {
	now := d.now()
	due, err := d.Store.Revocations(ctx, store.RevocationFilter{Status: store.RevocationScheduled, DueBefore: &now})
	if err != nil {
		return nil, err
	}
	out := []store.Image{}
	for _, r := range due {
		img, err := d.Store.Image(ctx, r.Digest)
		if err != nil {
			return out, err
		}
		reason := ""
		if img.State != store.Approved {
			reason = fmt.Sprintf("the digest is %s already", img.State)
		} else {
			v, _, err := d.Verdict(ctx, r.Digest)
			if err != nil {
				return out, err
			}
			if !d.Policy.Reevaluation.Calls(v) {
				reason = fmt.Sprintf("the policy no longer calls for it: its verdict is %s now", v.Effect)
			}
		}
		if reason != "" {
			cr, err := d.Store.CancelRevocation(ctx, r.ID, "airlock", reason)
			if errors.Is(err, store.ErrInvalidTransition) {
				continue // another server closed it first
			}
			if err != nil {
				return out, err
			}
			if d.Metrics != nil {
				d.Metrics.Revocations.WithLabelValues(store.RevocationCancelled).Inc()
			}
			d.raise(ctx, Alert{Kind: AlertRevocationCancelled, Digest: r.Digest, State: img.State, Repositories: img.Repositories, Revocation: &cr,
				Message: fmt.Sprintf("the revocation of %s scheduled for %s is cancelled: %s", r.Digest, r.Due.Format(time.RFC3339), reason)})
			continue
		}
		revoked, err := d.Store.ExecuteRevocation(ctx, r.ID, "airlock")
		if errors.Is(err, store.ErrInvalidTransition) {
			continue // another server executed it first, or the digest left approval meanwhile
		}
		if err != nil {
			return out, err
		}
		if d.Metrics != nil {
			d.Metrics.Revocations.WithLabelValues(store.RevocationExecuted).Inc()
		}
		r.Status = store.RevocationExecuted
		d.raise(ctx, Alert{Kind: AlertRevoked, Digest: r.Digest, State: revoked.State, Repositories: revoked.Repositories, Revocation: &r,
			Message: fmt.Sprintf("%s is revoked: the grace period of its scheduled revocation ended at %s (%s)", r.Digest, r.Due.Format(time.RFC3339), r.Reason)})
		out = append(out, revoked)
	}
	return out, nil
}

// ExpireWaivers audits waivers that ran out and judges the approved digests
// they covered again: the finding counts from now on, so the policy may call
// for a revocation (scheduled with its grace period, never at once).
func (d *Decider) ExpireWaivers(ctx context.Context) error {
	expired, err := d.Store.ExpireWaivers(ctx, d.now())
	if err != nil {
		return err
	}
	for _, w := range expired {
		var digests []string
		if w.Digest != "" {
			digests = []string{w.Digest}
		} else {
			imgs, err := d.Store.Images(ctx, store.ImageFilter{State: store.Approved, Repository: w.Repository})
			if err != nil {
				return err
			}
			for _, img := range imgs {
				if img.Subject == "" {
					digests = append(digests, img.Digest)
				}
			}
		}
		for _, dg := range digests {
			img, err := d.Store.Image(ctx, dg)
			if err != nil || img.State != store.Approved {
				continue
			}
			v, _, err := d.Verdict(ctx, dg)
			if err != nil {
				return err
			}
			a := Alert{Kind: AlertWaiverExpired, Digest: dg, State: img.State, Repositories: img.Repositories, Verdict: v.Effect,
				Message: fmt.Sprintf("waiver %d of %s expired; the policy now says %s", w.ID, w.Finding, v.Effect)}
			if d.Policy.Reevaluation.Calls(v) {
				sr, err := d.Store.ScheduleRevocation(ctx, store.ScheduledRevocation{Digest: dg, Due: d.now().Add(d.Policy.Reevaluation.Grace),
					Actor: "airlock", Reason: fmt.Sprintf("waiver %d of %s expired: %s", w.ID, w.Finding, policy.RejectReason(v))})
				if errors.Is(err, store.ErrInvalidTransition) {
					continue
				}
				if err != nil && !errors.Is(err, store.ErrExists) {
					return err
				}
				if err == nil && d.Metrics != nil {
					d.Metrics.Revocations.WithLabelValues(store.RevocationScheduled).Inc()
				}
				a.Revocation = &sr
			}
			d.raise(ctx, a)
		}
	}
	return nil
}

// Tick does the decision work that waits on time: revocations whose grace
// ended, waivers that expired, attestations for repositories that received
// an approved digest since it was attested.
func (d *Decider) Tick(ctx context.Context) {
	if _, err := d.ExecuteDue(ctx); err != nil {
		d.Log.Error("scheduled revocations", "err", err)
	}
	if err := d.ExpireWaivers(ctx); err != nil {
		d.Log.Error("expired waivers", "err", err)
	}
	if err := d.SyncAttestations(ctx); err != nil {
		d.Log.Error("attestations for new repositories", "err", err)
	}
}

// Watch runs Tick every interval until ctx ends.
func (d *Decider) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 15 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.Tick(ctx)
		}
	}
}

func (s *Server) reevaluationAPI(mux *http.ServeMux) {
	admin := func(c identity.Caller) bool { return c.IsAdmin() || c.Role == store.RoleScanner }
	mux.HandleFunc("POST /api/v1/reevaluate", s.authed(admin, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		db, err := OpenAdvisories(r.Context(), s.Config.Data)
		if err != nil {
			writeJSONError(w, http.StatusConflict, "NO_ADVISORIES", err.Error())
			return
		}
		defer db.Close()
		rep, err := s.Decider.Reevaluate(r.Context(), db, c.Name)
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
	}))
	mux.HandleFunc("GET /api/v1/revocations", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		q := r.URL.Query()
		rs, err := s.Store.Revocations(r.Context(), store.RevocationFilter{Digest: q.Get("digest"), Status: q.Get("status")})
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rs)
	}))
}

// OpenOffline opens what re-evaluation needs without serving: the store,
// the registry storage and the decider of cfg's data directory. It is how
// `airlock db import` re-evaluates when no server is named; close releases
// the store.
func OpenOffline(ctx context.Context, cfg config.Config, log *slog.Logger) (d *Decider, close func() error, err error) {
	st, err := sqlite.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return nil, nil, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	key, err := identity.LoadOrCreateKey(cfg.TokenKeyFile)
	if err != nil {
		return nil, nil, err
	}
	reg, err := registry.New(ctx, registry.Options{
		Storage: storageOptions(cfg), Store: st, Auth: &identity.Authenticator{Store: st, Key: key, TTL: cfg.TokenTTL},
		MaxManifestSize: cfg.MaxManifestSize, UploadSecret: derive(key, "upload-state"), Logger: log,
		Metrics: registry.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		return nil, nil, err
	}
	if d, err = newDecider(cfg, st, reg, log); err != nil {
		return nil, nil, err
	}
	d.Metrics = NewDecisionMetrics(nil)
	return d, st.Close, nil
}
