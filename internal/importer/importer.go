// Package importer brings external images into quarantine: it resolves a
// source to a digest, copies it into the private registry verifying every
// digest, records the documented source (reference as given, normalised,
// upstream registry, resolution time, who, transport, config facts and any
// upstream signatures) and enqueues vetting. It is the pipeline's import step.
package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/source"
	"github.com/airlock-dev/airlock/internal/store"
)

// Request is one import, as the API and the pull-through path make it. It is
// stored as the job's payload, so a restarted server can run it again.
type Request struct {
	Source   string `json:"source"`             // as given by the user
	As       string `json:"as,omitempty"`       // REPO[:TAG] in the private registry
	Platform string `json:"platform,omitempty"` // os/arch[/variant], or "" / "all" for everything
	Insecure bool   `json:"insecure,omitempty"` // plain HTTP upstream
	Actor    string `json:"actor"`
	// Upload is the server-side path of an uploaded archive (file transports).
	Upload string `json:"upload,omitempty"`
	// Credentials for the upstream registry (not persisted: see Payload).
	Username string `json:"-"`
	Password string `json:"-"`
}

// Result is what an import did.
type Result struct {
	Digest     string       `json:"digest"`
	MediaType  string       `json:"mediaType"`
	Repository string       `json:"repository"`
	Tags       []string     `json:"tags,omitempty"`
	TagsKept   []string     `json:"tagsKeptOnApproved,omitempty"`
	Platforms  []string     `json:"platforms,omitempty"`
	Size       int64        `json:"size"`
	Import     store.Import `json:"import"`
	State      store.State  `json:"state"`
}

// Importer does imports.
type Importer struct {
	Store    store.Store
	Registry *registry.Registry
	// Host is the registry's external host name, for messages.
	Host string
	// Mappings rewrite upstream repository prefixes to private ones.
	Mappings map[string]string
	// Keychain for upstream credentials (default: docker config and helpers).
	Keychain authn.Keychain
	// Transport for upstream requests (tests; proxies).
	Transport  http.RoundTripper
	MaxArchive int64
	TempDir    string
	Timeout    time.Duration // per import (default 30m)

	progress sync.Map // job id → *Progress
	creds    sync.Map // job id → authn.Authenticator (never persisted)
}

// Stage implements pipeline.Step.
func (im *Importer) Stage() string { return "import" }

// Run implements pipeline.Step: it imports the job's payload.
func (im *Importer) Run(ctx context.Context, job store.Job) (pipeline.Outcome, error) {
	var req Request
	if err := json.Unmarshal(job.Payload, &req); err != nil {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: fmt.Errorf("job %d has no import request: %w", job.ID, err)}
	}
	if a, ok := im.creds.Load(job.ID); ok {
		req.Username, req.Password = a.([2]string)[0], a.([2]string)[1]
	}
	res, err := im.importNow(ctx, job.ID, req)
	if err != nil {
		var rl *source.RateLimitError
		if errors.As(err, &rl) {
			return pipeline.Outcome{}, &pipeline.RetryAfter{After: retryAfter(rl), Err: err}
		}
		var ae *source.ArchiveError
		if errors.As(err, &ae) || errors.Is(err, errBadRequest) {
			return pipeline.Outcome{}, &pipeline.Permanent{Err: err}
		}
		return pipeline.Outcome{}, err
	}
	if req.Upload != "" {
		_ = os.Remove(req.Upload)
	}
	ev, _ := json.Marshal(res)
	return pipeline.Outcome{Evidence: ev, SetDigest: res.Digest}, nil
}

var errBadRequest = errors.New("bad import request")

// retryAfter is how long to wait after an upstream 429: what its
// Retry-After said (seconds or an HTTP date), else 30s.
func retryAfter(rl *source.RateLimitError) time.Duration {
	if rl.RetryAfter > 0 {
		return rl.RetryAfter
	}
	return 30 * time.Second
}

// Enqueue validates a request and enqueues its job; the import stage runs
// it. Credentials stay in memory only, for this process's workers.
func (im *Importer) Enqueue(ctx context.Context, req Request, key string) (store.Job, error) {
	src, err := im.parse(req)
	if err != nil {
		return store.Job{}, err
	}
	if _, _, err := im.target(src, req.As); err != nil {
		return store.Job{}, err
	}
	if _, err := parsePlatform(req.Platform); err != nil {
		return store.Job{}, err
	}
	payload, _ := json.Marshal(req)
	job, err := im.Store.EnqueueJob(ctx, store.NewJob{Stages: pipeline.Stages, Payload: payload, Key: key, Actor: req.Actor})
	if err != nil {
		return job, err
	}
	if req.Username != "" || req.Password != "" {
		im.creds.Store(job.ID, [2]string{req.Username, req.Password})
	}
	return job, nil
}

func (im *Importer) parse(req Request) (source.Source, error) {
	if req.Upload != "" {
		s, err := source.Parse(req.Source, false)
		if err != nil {
			return s, fmt.Errorf("%w: %v", errBadRequest, err)
		}
		if s.Transport == source.Registry {
			return s, fmt.Errorf("%w: an uploaded archive needs a docker-archive:, oci-archive: or oci-layout: source", errBadRequest)
		}
		if s.Transport == source.OCILayout {
			s.Transport = source.OCIArchive // the client sent the layout as a tar
		}
		s.Path = req.Upload
		return s, nil
	}
	s, err := source.Parse(req.Source, req.Insecure)
	if err != nil {
		return s, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if s.Transport != source.Registry {
		return s, fmt.Errorf("%w: %s is a file on your machine; `airlock import` uploads it to the server", errBadRequest, req.Source)
	}
	return s, nil
}

func parsePlatform(p string) (*v1.Platform, error) {
	if p == "" || p == "all" {
		return nil, nil
	}
	pl, err := v1.ParsePlatform(p)
	if err != nil {
		return nil, fmt.Errorf("%w: platform %q: %v", errBadRequest, p, err)
	}
	return pl, nil
}

// target names the private repository and tags.
func (im *Importer) target(s source.Source, as string) (string, []string, error) {
	repo := ""
	var tags []string
	if as != "" {
		r, t := as, ""
		if i := strings.LastIndex(as, ":"); i > strings.LastIndex(as, "/") {
			r, t = as[:i], as[i+1:]
		}
		repo = strings.TrimPrefix(r, im.Host+"/")
		if t != "" {
			tags = append(tags, t)
		}
	} else if s.Transport == source.Registry {
		repo = source.PrivateRepository(s, im.Mappings)
	} else {
		return "", nil, fmt.Errorf("%w: name the private repository for a file import with --as REPO[:TAG]", errBadRequest)
	}
	if len(tags) == 0 && s.Tag != "" && registry.ValidTag(s.Tag) {
		tags = append(tags, s.Tag)
	}
	if !registry.ValidRepository(repo) {
		return "", nil, fmt.Errorf("%w: %q is not a valid repository name", errBadRequest, repo)
	}
	for _, t := range tags {
		if !registry.ValidTag(t) {
			return "", nil, fmt.Errorf("%w: %q is not a valid tag", errBadRequest, t)
		}
	}
	return repo, tags, nil
}

// importNow does the work of the import stage for job id.
func (im *Importer) importNow(ctx context.Context, jobID int64, req Request) (Result, error) {
	var res Result
	timeout := im.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src, err := im.parse(req)
	if err != nil {
		return res, err
	}
	platform, err := parsePlatform(req.Platform)
	if err != nil {
		return res, err
	}
	repo, tags, err := im.target(src, req.As)
	if err != nil {
		return res, err
	}
	opts := source.Options{Keychain: im.Keychain, Platform: platform, MaxArchive: im.MaxArchive, TempDir: im.TempDir}
	if req.Username != "" || req.Password != "" {
		opts.Auth = &authn.Basic{Username: req.Username, Password: req.Password}
	}
	opts.Transport = im.Transport
	art, err := src.Open(ctx, opts)
	if err != nil {
		return res, err
	}
	defer art.Close()
	facts, err := source.Describe(art)
	if err != nil {
		return res, source.UpstreamError(req.Source, err)
	}
	var digests []string
	digests = append(digests, art.Digest.String())
	for _, f := range facts.Images {
		if f.Digest != art.Digest.String() {
			digests = append(digests, f.Digest)
		}
		if f.Platform != "" {
			res.Platforms = append(res.Platforms, f.Platform)
		}
	}
	facts.Attachments = source.FindAttachments(ctx, src, digests, opts)

	prog := im.progressFor(jobID)
	ing, err := im.Registry.Ingest(ctx, repo, tags, art.Index, art.Image, req.Actor, prog.update)
	if err != nil {
		return res, source.UpstreamError(req.Source, err)
	}
	if ing.Digest != art.Digest.String() {
		return res, fmt.Errorf("%s: stored %s but the source resolved to %s; the digest changed in transit", req.Source, ing.Digest, art.Digest)
	}
	factsJSON, _ := json.Marshal(struct {
		source.Facts
		Job int64 `json:"job"`
	}{facts, jobID})
	rec := store.Import{
		Digest: ing.Digest, Reference: req.Source, Normalized: src.Normalized, Registry: src.Registry,
		Transport: src.Transport, Repository: repo, Tags: tags, Platform: art.Narrowed,
		ResolvedAt: art.ResolvedAt, Actor: req.Actor, Facts: factsJSON,
	}
	if req.Upload != "" {
		rec.Transport = strings.SplitN(req.Source, ":", 2)[0]
	}
	rec, err = im.recordOnce(ctx, jobID, rec)
	if err != nil {
		return res, err
	}
	img, err := im.Store.Image(ctx, ing.Digest)
	if err != nil {
		return res, err
	}
	res = Result{Digest: ing.Digest, MediaType: ing.MediaType, Repository: repo, Tags: tags, TagsKept: ing.TagsKept,
		Platforms: res.Platforms, Size: ing.Size, Import: rec, State: img.State}
	return res, nil
}

// recordOnce records the import unless this job recorded it already (the
// stage may run again after a crash between recording and finishing).
func (im *Importer) recordOnce(ctx context.Context, jobID int64, rec store.Import) (store.Import, error) {
	prev, err := im.Store.ImportsOf(ctx, rec.Digest)
	if err != nil {
		return rec, err
	}
	for _, p := range prev {
		var f struct {
			Job int64 `json:"job"`
		}
		if json.Unmarshal(p.Facts, &f) == nil && f.Job == jobID {
			return p, nil
		}
	}
	return im.Store.RecordImport(ctx, rec)
}
