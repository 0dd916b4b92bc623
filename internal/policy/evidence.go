package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// Evidence is everything known about one digest, as the rules see it. Its
// JSON form is the document `airlock policy test` shows and the verdict's
// evidence digest covers. Findings, SBOM, profile and hardening are empty
// until the scan, profile and harden stages exist.
type Evidence struct {
	Digest    string           `json:"digest"`
	Image     ImageFacts       `json:"image"`
	Source    SourceFacts      `json:"source"`
	Stages    map[string]Stage `json:"stages"`
	Findings  []map[string]any `json:"findings"`
	SBOM      Placeholder      `json:"sbom"`
	Profile   ProfileFacts     `json:"profile"`
	Hardening HardeningFacts   `json:"hardening"`
	// Reevaluation names the re-match against newer advisories whose
	// vulnerability findings replaced the scan stage's (nil: none yet).
	Reevaluation *ReevaluationFacts `json:"reevaluation,omitempty"`
}

// ImageFacts describe the manifest.
type ImageFacts struct {
	MediaType    string   `json:"mediaType"`
	ArtifactType string   `json:"artifactType"`
	IsIndex      bool     `json:"isIndex"`
	Platforms    []string `json:"platforms"`
	Repositories []string `json:"repositories"`
	Size         int64    `json:"size"`
	State        string   `json:"state"`
}

// SourceFacts are the documented source (the newest import of the digest).
type SourceFacts struct {
	Imported       bool         `json:"imported"`
	Reference      string       `json:"reference"`
	Normalized     string       `json:"normalized"`
	Registry       string       `json:"registry"`
	Transport      string       `json:"transport"`
	Actor          string       `json:"actor"`
	ResolvedAt     string       `json:"resolvedAt"`
	TagMoved       bool         `json:"tagMoved"`
	PreviousDigest string       `json:"previousDigest"`
	Signatures     int          `json:"signatures"`   // upstream cosign signatures found (not verified)
	Attestations   int          `json:"attestations"` // upstream cosign attestations found (not verified)
	Attachments    []Attachment `json:"attachments"`
}

// Attachment is one upstream signature, attestation, SBOM or referrer found at import.
type Attachment struct {
	Kind   string `json:"kind"`
	Digest string `json:"digest"`
}

// Stage is the status of one vetting stage in the digest's newest job;
// "missing" when no job ran for it (a digest pushed rather than imported).
type Stage struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
	// EvidenceDigest is sha256 of the evidence the stage recorded.
	EvidenceDigest string `json:"evidenceDigest"`
	Job            int64  `json:"job"`
}

// Placeholder stands for evidence a later stage will provide.
type Placeholder struct {
	Present bool `json:"present"`
}

// ProfileFacts describe the sandbox profile (filled from the profile
// stage's evidence by profileFacts in profile_evidence.go).
type ProfileFacts struct {
	Present         bool     `json:"present"`
	NewDestinations []string `json:"newDestinations"`
	// Status is the profile stage's outcome: profiled, unavailable (no
	// sandbox on the host), not-runnable, failed, or missing (no profile
	// stage ran); empty only in hand-made evidence.
	Status         string   `json:"status"`
	Reason         string   `json:"reason"`
	Baseline       string   `json:"baseline"` // the last approved digest compared with ("" for none)
	NewExecutables []string `json:"newExecutables"`
	NewDNS         []string `json:"newDns"`
	NewListening   []string `json:"newListening"`
	NewWritten     []string `json:"newWritten"`
	Notes          []string `json:"notes"`         // codes of every note
	CriticalNotes  []string `json:"criticalNotes"` // codes of critical notes
	Listening      []int    `json:"listening"`     // ports
	Destinations   []string `json:"destinations"`  // every destination, "tcp name:port protocol"
	ExitCode       int      `json:"exitCode"`
	TimedOut       bool     `json:"timedOut"`
}

// StageMissing marks a stage no job recorded.
const StageMissing = "missing"

// Stages whose status the evidence reports; "decide" is the policy itself.
var evidenceStages = []string{"import", "scan", "profile", "harden"}

// Gather reads the evidence of digest from the store. job, if not nil, is
// the job being decided (its stages are taken as they are now).
func Gather(ctx context.Context, st store.Store, digest string, job *store.Job) (Evidence, error) {
	return GatherAt(ctx, st, digest, job, time.Now())
}

// GatherAt is Gather with waivers judged active or expired at now.
func GatherAt(ctx context.Context, st store.Store, digest string, job *store.Job, now time.Time) (Evidence, error) {
	img, err := st.Image(ctx, digest)
	if err != nil {
		return Evidence{}, err
	}
	ev := Evidence{
		Digest: digest,
		Image: ImageFacts{MediaType: img.MediaType, ArtifactType: img.ArtifactType, Repositories: img.Repositories,
			Size: img.Size, State: string(img.State), Platforms: []string{}},
		Stages:    map[string]Stage{},
		Findings:  []map[string]any{},
		Profile:   emptyProfileFacts(StageMissing),
		Hardening: emptyHardeningFacts(StageMissing),
		Source:    SourceFacts{Attachments: []Attachment{}},
	}
	ev.Image.IsIndex = strings.Contains(img.MediaType, "index") || strings.Contains(img.MediaType, "manifest.list")
	for _, c := range img.Children {
		if c.Platform != nil {
			p := c.Platform.OS + "/" + c.Platform.Architecture
			if c.Platform.Variant != "" {
				p += "/" + c.Platform.Variant
			}
			ev.Image.Platforms = append(ev.Image.Platforms, p)
		}
	}
	imports, err := st.ImportsOf(ctx, digest)
	if err != nil {
		return Evidence{}, err
	}
	if n := len(imports); n > 0 {
		im := imports[n-1]
		ev.Source = SourceFacts{Imported: true, Reference: im.Reference, Normalized: im.Normalized, Registry: im.Registry,
			Transport: im.Transport, Actor: im.Actor, ResolvedAt: im.ResolvedAt.UTC().Format(time.RFC3339),
			TagMoved: im.TagMoved, PreviousDigest: im.PreviousDigest, Attachments: []Attachment{}}
		var facts struct {
			Attachments []Attachment `json:"attachments"`
		}
		if len(im.Facts) > 0 {
			_ = json.Unmarshal(im.Facts, &facts)
		}
		for _, a := range facts.Attachments {
			ev.Source.Attachments = append(ev.Source.Attachments, a)
			switch a.Kind {
			case "cosign-signature":
				ev.Source.Signatures++
			case "cosign-attestation":
				ev.Source.Attestations++
			}
		}
	}
	if job == nil {
		jobs, err := st.Jobs(ctx, store.JobFilter{Digest: digest, Limit: 1})
		if err != nil {
			return Evidence{}, err
		}
		if len(jobs) > 0 {
			job = &jobs[0]
		}
	}
	for _, name := range evidenceStages {
		ev.Stages[name] = Stage{Status: StageMissing}
	}
	if job != nil {
		for _, s := range job.Stages {
			if s.Name == "decide" {
				continue
			}
			st := Stage{Status: s.Status, Attempts: s.Attempts, Error: s.Error, Job: job.ID}
			if len(s.Evidence) > 0 {
				st.EvidenceDigest = store.DigestOf(s.Evidence)
			}
			if s.Name == "scan" && s.Status == store.StageDone && len(s.Evidence) > 0 {
				// The scan stage's evidence (internal/scan/stage.Evidence):
				// findings as the rules read them, and whether an SBOM was attached.
				var scanned struct {
					Findings []map[string]any `json:"findings"`
					Images   []struct {
						Artifacts []struct {
							ArtifactType string `json:"artifactType"`
						} `json:"artifacts"`
					} `json:"images"`
				}
				if err := json.Unmarshal(s.Evidence, &scanned); err == nil {
					for _, f := range scanned.Findings {
						if _, ok := f["fixed"]; !ok {
							f["fixed"] = ""
						}
						ev.Findings = append(ev.Findings, f)
					}
					for _, im := range scanned.Images {
						for _, a := range im.Artifacts {
							if strings.Contains(a.ArtifactType, "cyclonedx") {
								ev.SBOM.Present = true
							}
						}
					}
				}
			}
			if s.Name == "profile" {
				ev.Profile = profileFacts(s.Status, s.Evidence)
			}
			if s.Name == "harden" {
				ev.Hardening = hardeningFacts(s.Status, s.Evidence)
			}
			ev.Stages[s.Name] = st
		}
	}
	// Re-evaluations and waivers: what changed about the findings since the scan.
	if err := overlay(ctx, st, &ev, now); err != nil {
		return Evidence{}, err
	}
	return ev, nil
}

// StageNames lists the stages in the evidence, in pipeline order.
func (ev Evidence) StageNames() []string {
	names := make([]string, 0, len(ev.Stages))
	for n := range ev.Stages {
		names = append(names, n)
	}
	order := map[string]int{}
	for i, n := range evidenceStages {
		order[n] = i + 1
	}
	sort.Slice(names, func(i, j int) bool {
		oi, oj := order[names[i]], order[names[j]]
		if oi == 0 {
			oi = 100
		}
		if oj == 0 {
			oj = 100
		}
		if oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	return names
}

func (s Stage) String() string { return fmt.Sprintf("%s (attempts %d)", s.Status, s.Attempts) }
