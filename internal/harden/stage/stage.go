// Package stage is the pipeline's harden stage: from the profile the
// profile stage recorded for the same job, it builds the hardened image of
// the quarantined digest, replays the profile on it, and when the replay
// passes stores it in the private registry (quarantined, as a digest of its
// own) linked to its original in the store and by a referrer carrying the
// report. A failed replay keeps only the original and records why.
package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/scan"
	scanstage "github.com/airlock-dev/airlock/internal/scan/stage"
	"github.com/airlock-dev/airlock/internal/store"
)

// Evidence statuses.
const (
	StatusHardened     = "hardened"      // replay passed; the hardened digest is stored and linked
	StatusReplayFailed = "replay-failed" // the hardened image behaved differently; the original is kept
	StatusSkipped      = "skipped"       // no profile to harden from (see Reason)
	StatusUnavailable  = "unavailable"   // no sandbox to replay in: nothing unproven is stored
)

// LineageKind is the store lineage kind of a hardened image.
const LineageKind = "hardened"

// Step implements pipeline.Step for the "harden" stage.
type Step struct {
	Store    store.Store
	Registry *registry.Registry
	// Sandbox replays the profile; Available says why it cannot (nil: it can).
	Sandbox   profile.Sandbox
	Available func() error
	// Scan scans an image for the findings-removed comparison (nil: no
	// comparison).
	Scan func(ctx context.Context, img v1.Image) (*scan.Report, error)
	// ConfigDir holds the per-repository configs (REPOSITORY.yaml).
	ConfigDir string
	TempDir   string
	Version   string
	Limits    harden.Limits
}

// Stage implements pipeline.Step.
func (s *Step) Stage() string { return "harden" }

// Evidence is what the stage records.
type Evidence struct {
	Status        string `json:"status"`
	Reason        string `json:"reason,omitempty"`
	Original      string `json:"original,omitempty"` // the manifest hardened (a child of an index, or the digest)
	Hardened      string `json:"hardened,omitempty"` // digest of the hardened image, when stored
	Repository    string `json:"repository,omitempty"`
	ProfileDigest string `json:"profileDigest,omitempty"`
	ReportDigest  string `json:"reportDigest,omitempty"`

	OriginalSize       int64    `json:"originalSize"`
	HardenedSize       int64    `json:"hardenedSize"`
	RemovedFiles       int      `json:"removedFiles"`
	RemovedBytes       int64    `json:"removedBytes"`
	RemovedExecutables []string `json:"removedExecutables"`
	RemovedPackages    []string `json:"removedPackages"`
	RemovedFindings    []string `json:"removedFindings"`
	ReplayPassed       bool     `json:"replayPassed"`
	ReplayFailures     []string `json:"replayFailures"`

	Artifacts []scanstage.Artifact `json:"artifacts"`
}

func (e *Evidence) fill() {
	for _, l := range []*[]string{&e.RemovedExecutables, &e.RemovedPackages, &e.RemovedFindings, &e.ReplayFailures} {
		if *l == nil {
			*l = []string{}
		}
	}
	if e.Artifacts == nil {
		e.Artifacts = []scanstage.Artifact{}
	}
}

func outcome(ev Evidence) (pipeline.Outcome, error) {
	ev.fill()
	b, err := json.Marshal(ev)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return pipeline.Outcome{Evidence: b}, nil
}

// Run implements pipeline.Step.
func (s *Step) Run(ctx context.Context, job store.Job) (pipeline.Outcome, error) {
	if job.Digest == "" {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: errors.New("the harden stage needs the digest the import stage resolved")}
	}
	rec, err := s.Store.Image(ctx, job.Digest)
	if err != nil {
		return pipeline.Outcome{}, fmt.Errorf("read %s: %w", job.Digest, err)
	}
	if len(rec.Repositories) == 0 {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("%s is in no repository", job.Digest)}
	}
	repo := rec.Repositories[0]
	pev, ok := stageEvidence[profile.StageEvidence](job, "profile")
	switch {
	case !ok:
		return outcome(Evidence{Status: StatusSkipped, Reason: "the job has no profile stage evidence; nothing says what the image uses"})
	case pev.Status != profile.StatusProfiled || pev.Profile == nil:
		return outcome(Evidence{Status: StatusSkipped, Original: pev.Digest,
			Reason: fmt.Sprintf("the profile stage recorded %q (%s); there is no profile to harden from", pev.Status, pev.Reason)})
	}
	target := pev.Digest
	if target == "" {
		target = job.Digest
	}
	ev := Evidence{Original: target, Repository: repo, ProfileDigest: pev.ProfileDigest}
	if s.Available != nil {
		if err := s.Available(); err != nil {
			ev.Status, ev.Reason = StatusUnavailable, err.Error()+"; the hardened image cannot be proven to behave the same, so none is stored"
			return outcome(ev)
		}
	}
	cfg, err := harden.LoadRepositoryConfig(s.ConfigDir, repo)
	if err != nil {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("hardening config of %s: %w", repo, err)}
	}
	img, err := s.Registry.Image(ctx, repo, target)
	if err != nil {
		return pipeline.Outcome{}, fmt.Errorf("read %s from the registry: %w", target, err)
	}
	res, err := harden.Harden(ctx, img, pev.Profile, harden.Options{Keep: cfg.Rules("config"), NoDefaults: cfg.NoDefaults,
		ProfileDigest: pev.ProfileDigest, Version: s.Version, TempDir: s.TempDir, Limits: s.Limits})
	if err != nil {
		var le *harden.LayerError
		var ie *harden.InputError
		if errors.As(err, &le) || errors.As(err, &ie) {
			return pipeline.Outcome{}, &pipeline.Permanent{Err: err}
		}
		return pipeline.Outcome{}, err
	}
	defer res.Close()
	rep := res.Report

	if s.Scan != nil {
		// The scan stage's findings of the original, when it recorded them,
		// spare scanning it again.
		orig := &scan.Report{}
		if sev, ok := stageEvidence[scanstage.Evidence](job, "scan"); ok && scannedImage(sev, target) {
			for _, f := range sev.Findings {
				if f.Image == target {
					orig.Findings = append(orig.Findings, f.Finding)
				}
			}
		} else if orig, err = s.Scan(ctx, img); err != nil {
			return pipeline.Outcome{}, fmt.Errorf("scan %s: %w", target, err)
		}
		hard, err := s.Scan(ctx, res.Image)
		if err != nil {
			return pipeline.Outcome{}, fmt.Errorf("scan the hardened image of %s: %w", target, err)
		}
		rep.Findings = harden.CompareFindings(orig, hard)
	}
	rr, err := harden.Replay(ctx, res.Image, pev.Profile, harden.SandboxProfiler(s.Sandbox, s.TempDir, s.Version))
	if err != nil {
		return pipeline.Outcome{}, err
	}
	// The replay's own profile has timestamps; the attached report keeps
	// the verdict so that a stage run again attaches the same bytes.
	rr.Profile = nil
	rep.Replay = rr

	ev.OriginalSize, ev.HardenedSize = rep.Original.Size, rep.Hardened.Size
	ev.RemovedFiles, ev.RemovedBytes = rep.Removed.Files, rep.Removed.Bytes
	ev.RemovedExecutables, ev.RemovedPackages = rep.Removed.Executables, rep.Packages.Removed
	if rep.Findings != nil {
		ev.RemovedFindings = rep.Findings.Removed
	}
	ev.ReplayPassed, ev.ReplayFailures = rr.Passed, rr.Failures

	if rr.Passed {
		in, err := s.Registry.Ingest(ctx, repo, nil, nil, res.Image, registry.OwnActor, nil)
		if err != nil {
			return pipeline.Outcome{}, fmt.Errorf("store the hardened image of %s in %s: %w", target, repo, err)
		}
		ev.Hardened = in.Digest
		detail, _ := json.Marshal(map[string]string{"profile": pev.ProfileDigest, "job": fmt.Sprint(job.ID)})
		if _, err := s.Store.RecordLineage(ctx, store.Lineage{Original: target, Derived: in.Digest, Kind: LineageKind,
			Repository: repo, Detail: detail, Actor: registry.OwnActor}); err != nil {
			return pipeline.Outcome{}, fmt.Errorf("link the hardened image %s to %s: %w", in.Digest, target, err)
		}
		ev.Status = StatusHardened
	} else {
		ev.Status = StatusReplayFailed
		ev.Reason = "the hardened image does not behave like the original (" + strings.Join(rr.Failures, "; ") +
			"); the original is kept; add what it missed to the repository's hardening config"
	}

	report, err := json.Marshal(rep)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	sum, _, _ := v1.SHA256(bytes.NewReader(report))
	ev.ReportDigest = sum.String()
	if ev.Artifacts, err = s.attach(ctx, rec.Repositories, target, report, ev); err != nil {
		return pipeline.Outcome{}, err
	}
	return outcome(ev)
}

// attach stores the report as a referrer of the original in every
// repository holding it.
func (s *Step) attach(ctx context.Context, repos []string, target string, report []byte, ev Evidence) ([]scanstage.Artifact, error) {
	raw, mt, err := s.Registry.RawManifest(ctx, repos[0], target)
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(target)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{"dev.airlock.harden.status": ev.Status, "dev.airlock.harden.reportDigest": ev.ReportDigest,
		harden.AnnotationProfile: ev.ProfileDigest}
	if ev.Hardened != "" {
		ann["dev.airlock.harden.hardened"] = ev.Hardened
	}
	art, err := registry.Referrer(report, harden.ArtifactType, v1.Descriptor{MediaType: types.MediaType(mt), Size: int64(len(raw)), Digest: h}, ann)
	if err != nil {
		return nil, err
	}
	var out []scanstage.Artifact
	for _, repo := range repos {
		md, err := s.Registry.PutOwnArtifact(ctx, repo, "", art, "harden report of "+target+" made by airlock harden")
		if err != nil {
			return nil, fmt.Errorf("attach the harden report to %s in %s: %w", target, repo, err)
		}
		out = append(out, scanstage.Artifact{Repository: repo, Manifest: md, ArtifactType: harden.ArtifactType, Blob: ev.ReportDigest})
	}
	return out, nil
}

// stageEvidence decodes the evidence a done stage of the job recorded.
func stageEvidence[T any](job store.Job, name string) (T, bool) {
	var v T
	for _, st := range job.Stages {
		if st.Name != name || st.Status != store.StageDone || len(st.Evidence) == 0 {
			continue
		}
		if json.Unmarshal(st.Evidence, &v) == nil {
			return v, true
		}
	}
	return v, false
}

func scannedImage(ev scanstage.Evidence, digest string) bool {
	for _, im := range ev.Images {
		if im.Digest == digest {
			return true
		}
	}
	return false
}
