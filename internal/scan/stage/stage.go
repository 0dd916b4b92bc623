// Package stage is the pipeline's scan stage: it reads the imported digest
// from the private registry (quarantined, as it is), scans it, records the
// findings as the stage's evidence and attaches the SBOM (CycloneDX) and the
// full report to the digest as OCI referrers that pullers can fetch.
package stage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/store"
)

// Step implements pipeline.Step for the "scan" stage.
type Step struct {
	Store    store.Store
	Registry *registry.Registry
	// Detectors builds the detectors for one scan.
	Detectors func() ([]scan.Detector, error)
	// Matcher opens the advisory matcher for one run (nil when no database
	// was imported) and a function that releases it.
	Matcher   func(ctx context.Context) (scan.Matcher, func(), error)
	TempDir   string
	Version   string
	Limits    scan.Limits
	RulesInfo func([]scan.Detector) (int, string)
}

// Stage implements pipeline.Step.
func (s *Step) Stage() string { return "scan" }

// Evidence is what the scan stage records: every finding (as the policy
// reads them), and per image the summary and the attached artifacts.
type Evidence struct {
	Findings   []EvidenceFinding `json:"findings"`
	Images     []ImageEvidence   `json:"images"`
	AdvisoryDB string            `json:"advisoryDb,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// EvidenceFinding is a finding with the image it was found in.
type EvidenceFinding struct {
	scan.Finding
	Image string `json:"image"`
}

// ImageEvidence summarises the scan of one image manifest.
type ImageEvidence struct {
	Digest       string       `json:"digest"`
	Platform     string       `json:"platform,omitempty"`
	Summary      scan.Summary `json:"summary"`
	ReportDigest string       `json:"reportDigest"` // sha256 of the JSON report
	Artifacts    []Artifact   `json:"artifacts"`
}

// Artifact is a referrer the stage attached.
type Artifact struct {
	Repository   string `json:"repository"`
	Manifest     string `json:"manifest"`
	ArtifactType string `json:"artifactType"`
	Blob         string `json:"blob"` // digest of the SBOM or report itself
}

// Run implements pipeline.Step.
func (s *Step) Run(ctx context.Context, job store.Job) (pipeline.Outcome, error) {
	if job.Digest == "" {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: errors.New("the scan stage needs the digest the import stage resolved")}
	}
	rec, err := s.Store.Image(ctx, job.Digest)
	if err != nil {
		return pipeline.Outcome{}, fmt.Errorf("read %s: %w", job.Digest, err)
	}
	repos := rec.Repositories
	if len(repos) == 0 {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("%s is in no repository", job.Digest)}
	}
	// The scan judges the image as of its import, so a stage run again after
	// a crash makes the same report, byte for byte, and the same referrers.
	reference, upstream, at := "", "", rec.CreatedAt
	if imps, err := s.Store.ImportsOf(ctx, job.Digest); err == nil && len(imps) > 0 {
		last := imps[len(imps)-1]
		reference, at = last.Reference, last.ResolvedAt
		if last.Transport == "registry" && last.Normalized != "" {
			upstream = scan.RepositoryOf(last.Normalized)
		}
	}
	if reference == "" {
		reference = repos[0] + "@" + job.Digest
	}
	type target struct{ digest, mediaType, platform string }
	var targets []target
	if isIndex(rec.MediaType) {
		for _, c := range rec.Children {
			if isIndex(c.MediaType) {
				continue
			}
			p := ""
			if c.Platform != nil {
				p = c.Platform.OS + "/" + c.Platform.Architecture
				if c.Platform.Variant != "" {
					p += "/" + c.Platform.Variant
				}
			}
			targets = append(targets, target{c.Digest, c.MediaType, p})
		}
		if len(targets) == 0 {
			return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("index %s has no image to scan", job.Digest)}
		}
	} else {
		targets = []target{{job.Digest, rec.MediaType, ""}}
	}
	var matcher scan.Matcher
	if s.Matcher != nil {
		var release func()
		if matcher, release, err = s.Matcher(ctx); err != nil {
			return pipeline.Outcome{}, fmt.Errorf("advisory database: %w", err)
		}
		if release != nil {
			defer release()
		}
	}
	ev := Evidence{Findings: []EvidenceFinding{}}
	for _, t := range targets {
		ds, err := s.Detectors()
		if err != nil {
			return pipeline.Outcome{}, &pipeline.Permanent{Err: err}
		}
		img, err := s.Registry.Image(ctx, repos[0], t.digest)
		if err != nil {
			return pipeline.Outcome{}, fmt.Errorf("read %s from the registry: %w", t.digest, err)
		}
		opts := scan.Options{Reference: reference, Repository: upstream, Detectors: ds, Matcher: matcher,
			Limits: s.Limits, TempDir: s.TempDir, Version: s.Version, Now: at.UTC().Truncate(time.Second)}
		if s.RulesInfo != nil {
			opts.Rules, opts.RulesHash = s.RulesInfo(ds)
		}
		rep, err := scan.Run(ctx, img, opts)
		if err != nil {
			var le *scan.LayerError
			if errors.As(err, &le) {
				return pipeline.Outcome{}, &pipeline.Permanent{Err: err}
			}
			return pipeline.Outcome{}, err
		}
		rep.Scanner.DurationSecs = 0 // not part of the evidence: it would differ run to run
		if rep.Image.Digest != t.digest {
			return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("scanned %s but asked for %s", rep.Image.Digest, t.digest)}
		}
		ie, err := s.attach(ctx, repos, t.digest, t.mediaType, rep)
		if err != nil {
			return pipeline.Outcome{}, err
		}
		ie.Platform = t.platform
		if ie.Platform == "" {
			ie.Platform = rep.Image.Platform
		}
		ev.Images = append(ev.Images, ie)
		for _, f := range rep.Findings {
			ev.Findings = append(ev.Findings, EvidenceFinding{Finding: f, Image: t.digest})
		}
		ev.AdvisoryDB = rep.Scanner.AdvisoryDB
		ev.Notes = rep.Notes
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return pipeline.Outcome{Evidence: b}, nil
}

func isIndex(mt string) bool {
	return strings.Contains(mt, "index") || strings.Contains(mt, "manifest.list")
}

// attach stores the CycloneDX SBOM and the JSON report as referrers of the
// image in every repository holding it, through the registry's own-artifact
// path (recorded approved, so whoever may pull the image may pull them).
func (s *Step) attach(ctx context.Context, repos []string, dgst, mediaType string, rep *scan.Report) (ImageEvidence, error) {
	ie := ImageEvidence{Digest: dgst, Summary: rep.Summary}
	var sbom, report bytes.Buffer
	if err := rep.WriteCycloneDX(&sbom); err != nil {
		return ie, err
	}
	if err := rep.Write(&report, "json", false); err != nil {
		return ie, err
	}
	sum := sha256.Sum256(report.Bytes())
	ie.ReportDigest = "sha256:" + hex.EncodeToString(sum[:])
	h, err := v1.NewHash(dgst)
	if err != nil {
		return ie, err
	}
	raw, _, err := s.Registry.RawManifest(ctx, repos[0], dgst)
	if err != nil {
		return ie, err
	}
	subject := v1.Descriptor{MediaType: types.MediaType(mediaType), Size: int64(len(raw)), Digest: h}
	created := rep.ScannedAt.UTC().Format(time.RFC3339)
	for _, a := range []struct {
		blob []byte
		typ  string
		what string
	}{{sbom.Bytes(), scan.MediaTypeCycloneDX, "CycloneDX SBOM"}, {report.Bytes(), scan.MediaTypeReport, "scan report"}} {
		img, err := registry.Referrer(a.blob, a.typ, subject, map[string]string{
			"org.opencontainers.image.created": created, "dev.airlock.scan.reportDigest": ie.ReportDigest,
		})
		if err != nil {
			return ie, err
		}
		blobDigest, _, _ := v1.SHA256(bytes.NewReader(a.blob))
		for _, repo := range repos {
			md, err := s.Registry.PutOwnArtifact(ctx, repo, "", img, a.what+" of "+dgst+" made by airlock scan")
			if err != nil {
				return ie, fmt.Errorf("attach %s to %s in %s: %w", a.what, dgst, repo, err)
			}
			ie.Artifacts = append(ie.Artifacts, Artifact{Repository: repo, Manifest: md, ArtifactType: a.typ, Blob: blobDigest.String()})
		}
	}
	return ie, nil
}

