// Package stage is the pipeline's profile stage: it reads the imported
// digest from the private registry (quarantined, as it is), runs it in the
// sandbox with the repository's settings, records the profile as evidence,
// attaches it to the digest as an OCI referrer and diffs it against the
// profile of the repository's last approved digest.
package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/store"
)

// DefaultDuration is how long the pipeline lets an image run when its
// repository names no duration.
const DefaultDuration = 20 * time.Second

// Settings are a repository's profiling parameters.
type Settings struct {
	Duration   time.Duration
	HTTPProbes []sandbox.HTTPProbe
	ProbeCmds  [][]string
}

// Step implements pipeline.Step for the "profile" stage.
type Step struct {
	Store    store.Store
	Registry *registry.Registry
	Sandbox  profile.Sandbox
	// Available reports why the sandbox cannot run on this host (nil: it can).
	Available func() error
	// Settings returns the parameters for a repository (nil: defaults).
	Settings func(repository string) Settings
	Limits   sandbox.Limits
	TempDir  string
	Version  string
	// Platform is the platform run from an index (default this host's).
	Platform string
}

// Stage implements pipeline.Step.
func (s *Step) Stage() string { return "profile" }

// Run implements pipeline.Step. A sandbox that fails is a stage error
// (retried, then the job fails and the digest stays quarantined); a host
// without a sandbox and an image with nothing to run are recorded as such,
// with no profile, and the policy sends them to a human.
func (s *Step) Run(ctx context.Context, job store.Job) (pipeline.Outcome, error) {
	if job.Digest == "" {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: errors.New("the profile stage needs the digest the import stage resolved")}
	}
	rec, err := s.Store.Image(ctx, job.Digest)
	if err != nil {
		return pipeline.Outcome{}, fmt.Errorf("read %s: %w", job.Digest, err)
	}
	if len(rec.Repositories) == 0 {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("%s is in no repository", job.Digest)}
	}
	repos := rec.Repositories
	target, mediaType, platform := job.Digest, rec.MediaType, ""
	if isIndex(rec.MediaType) {
		want := s.Platform
		if want == "" {
			want = runtime.GOOS + "/" + runtime.GOARCH
		}
		target = ""
		for _, c := range rec.Children {
			if c.Platform != nil && c.Platform.OS+"/"+c.Platform.Architecture == want && !isIndex(c.MediaType) {
				target, mediaType, platform = c.Digest, c.MediaType, want
				break
			}
		}
		if target == "" {
			return outcome(profile.StageEvidence{Status: profile.StatusNotRunnable,
				Reason: fmt.Sprintf("index %s has no image for %s, the platform this sandbox runs", job.Digest, want)})
		}
	}
	ev := profile.StageEvidence{Status: profile.StatusProfiled, Digest: target, Platform: platform, Critical: []string{}}
	// A stage run again after a crash reuses the profile it attached.
	prof, raw, found, err := s.attached(ctx, repos[0], target)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	if !found {
		if s.Available != nil {
			if err := s.Available(); err != nil {
				return outcome(profile.StageEvidence{Status: profile.StatusUnavailable, Digest: target, Platform: platform, Critical: []string{},
					Reason: err.Error() + "; the digest was not profiled and needs a human decision"})
			}
		}
		img, err := s.Registry.Image(ctx, repos[0], target)
		if err != nil {
			return pipeline.Outcome{}, fmt.Errorf("read %s from the registry: %w", target, err)
		}
		set := Settings{Duration: DefaultDuration}
		if s.Settings != nil {
			set = s.Settings(repos[0])
			if set.Duration <= 0 {
				set.Duration = DefaultDuration
			}
		}
		reference := repos[0] + "@" + job.Digest
		if imps, err := s.Store.ImportsOf(ctx, job.Digest); err == nil && len(imps) > 0 {
			reference = imps[len(imps)-1].Reference
		}
		prof, err = profile.Make(ctx, img, s.Sandbox, profile.Options{Reference: reference, Duration: set.Duration,
			HTTPProbes: set.HTTPProbes, ProbeCmds: set.ProbeCmds, Limits: s.Limits, TempDir: s.TempDir, Version: s.Version})
		switch {
		case errors.Is(err, profile.ErrNotRunnable):
			return outcome(profile.StageEvidence{Status: profile.StatusNotRunnable, Digest: target, Platform: platform, Critical: []string{}, Reason: err.Error()})
		case errors.Is(err, sandbox.ErrUnpackLimit):
			return pipeline.Outcome{}, &pipeline.Permanent{Err: err}
		case err != nil:
			return pipeline.Outcome{}, err
		}
		if raw, err = profile.Marshal(prof); err != nil {
			return pipeline.Outcome{}, err
		}
	}
	sum, _, _ := v1.SHA256(bytes.NewReader(raw))
	ev.ProfileDigest = sum.String()
	ev.Profile = &prof
	ev.Critical = nonNil(prof.Critical())
	if ev.Artifacts, err = s.attach(ctx, repos, target, mediaType, raw, prof); err != nil {
		return pipeline.Outcome{}, err
	}
	base, err := s.baseline(ctx, repos[0], job.Digest, target)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	if base != nil {
		ev.Baseline = &profile.Baseline{Digest: base.Image.Digest, Diff: profile.Compare(*base, prof)}
	}
	return outcome(ev)
}

func outcome(ev profile.StageEvidence) (pipeline.Outcome, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return pipeline.Outcome{Evidence: b}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func isIndex(mt string) bool {
	return strings.Contains(mt, "index") || strings.Contains(mt, "manifest.list")
}

// attached finds a profile this stage attached to digest before (a crash
// kept its result from being recorded).
func (s *Step) attached(ctx context.Context, repo, digest string) (profile.Profile, []byte, bool, error) {
	refs, err := s.Store.Referrers(ctx, repo, digest)
	if err != nil {
		return profile.Profile{}, nil, false, fmt.Errorf("referrers of %s: %w", digest, err)
	}
	for _, r := range refs {
		if r.ArtifactType != profile.MediaType {
			continue
		}
		img, err := s.Registry.Image(ctx, repo, r.Digest)
		if err != nil {
			return profile.Profile{}, nil, false, fmt.Errorf("read the profile %s of %s: %w", r.Digest, digest, err)
		}
		ls, err := img.Layers()
		if err != nil || len(ls) != 1 {
			continue
		}
		rc, err := ls[0].Compressed()
		if err != nil {
			return profile.Profile{}, nil, false, err
		}
		raw, err := io.ReadAll(io.LimitReader(rc, profile.MaxDocument+1))
		rc.Close()
		if err != nil {
			return profile.Profile{}, nil, false, err
		}
		p, err := profile.Parse(bytes.NewReader(raw))
		if err != nil || p.Image.Digest != digest {
			continue // not ours to reuse: run again
		}
		return p, raw, true, nil
	}
	return profile.Profile{}, nil, false, nil
}

// attach stores the profile as a referrer of digest in every repository
// holding it (recorded approved by Airlock, like the scan's SBOM).
func (s *Step) attach(ctx context.Context, repos []string, digest, mediaType string, raw []byte, p profile.Profile) ([]profile.Artifact, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, err
	}
	manifest, _, err := s.Registry.RawManifest(ctx, repos[0], digest)
	if err != nil {
		return nil, err
	}
	subject := v1.Descriptor{MediaType: types.MediaType(mediaType), Size: int64(len(manifest)), Digest: h}
	ann := map[string]string{"dev.airlock.profile.critical": strings.Join(p.Critical(), ",")}
	if p.Run.StartedAt != "" {
		ann["org.opencontainers.image.created"] = p.Run.StartedAt
	}
	img, err := registry.Referrer(raw, profile.MediaType, subject, ann)
	if err != nil {
		return nil, err
	}
	blob, _, _ := v1.SHA256(bytes.NewReader(raw))
	var out []profile.Artifact
	for _, repo := range repos {
		md, err := s.Registry.PutOwnArtifact(ctx, repo, "", img, "behaviour profile of "+digest+" made by airlock profile")
		if err != nil {
			return nil, fmt.Errorf("attach the profile to %s in %s: %w", digest, repo, err)
		}
		out = append(out, profile.Artifact{Repository: repo, Manifest: md, ArtifactType: profile.MediaType, Blob: blob.String()})
	}
	return out, nil
}

// baseline is the profile of the repository's most recently approved
// image (not this one, not an artifact) that has one.
func (s *Step) baseline(ctx context.Context, repo string, digests ...string) (*profile.Profile, error) {
	imgs, err := s.Store.Images(ctx, store.ImageFilter{State: store.Approved, Repository: repo})
	if err != nil {
		return nil, fmt.Errorf("approved images of %s: %w", repo, err)
	}
	for _, img := range imgs {
		if img.Subject != "" || contains(digests, img.Digest) || !runnable(img) {
			continue
		}
		jobs, err := s.Store.Jobs(ctx, store.JobFilter{Digest: img.Digest})
		if err != nil {
			return nil, fmt.Errorf("jobs of %s: %w", img.Digest, err)
		}
		for _, j := range jobs {
			for _, st := range j.Stages {
				if st.Name != "profile" || st.Status != store.StageDone || len(st.Evidence) == 0 {
					continue
				}
				var ev profile.StageEvidence
				if json.Unmarshal(st.Evidence, &ev) == nil && ev.Status == profile.StatusProfiled && ev.Profile != nil {
					return ev.Profile, nil
				}
			}
		}
	}
	return nil, nil
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// runnable: an image manifest or index, not an artifact Airlock or anyone attached.
func runnable(img store.Image) bool {
	if img.ArtifactType == "" {
		return true
	}
	return strings.Contains(img.ArtifactType, "container.image.v1+json") || strings.Contains(img.ArtifactType, "image.config")
}
