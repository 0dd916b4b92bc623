package admission

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/store"
)

// ErrUnavailable means the index cannot answer: the store could not be read
// and what the index holds is older than its bound. The webhook denies.
var ErrUnavailable = errors.New("the approval index is unavailable")

// Refusal is an index answer of "no", with one sentence saying why.
type Refusal struct {
	Reason string
	// transient: the attestation could not be read (not: it was read and
	// is wrong), so the next periodic refresh tries again.
	transient bool
}

func (r *Refusal) Error() string { return r.Reason }

func refuse(format string, a ...any) error { return &Refusal{Reason: fmt.Sprintf(format, a...)} }

// IndexOptions configure an Index.
type IndexOptions struct {
	// Store is the record of approvals. If it has a Generation() uint64
	// method (the SQLite store does), a change of generation makes the next
	// decision re-read the store first, so a revocation applies at once.
	Store store.Store
	// Key verifies approval attestations (the public half of the signing key).
	Key crypto.PublicKey
	// ReadManifest reads a stored attestation manifest from the private
	// registry's storage (registry.Registry.Image): a local read, done when
	// the index is rebuilt, never while a request waits.
	ReadManifest func(ctx context.Context, repo, digest string) (v1.Image, error)
	// ResolveTag returns the digest a tag points to in a repository of the
	// private registry, or "" (registry.Registry.ResolveTag). Optional: without
	// it tags are never pinned by the mutating webhook.
	ResolveTag func(ctx context.Context, repo, tag string) (string, error)
	// Interval between background refreshes (Run); default 2s.
	Interval time.Duration
	// MaxStale is how old the index may be when the store cannot be read
	// before every decision is a denial; default 10s.
	MaxStale time.Duration
	// RefreshTimeout bounds one read of the store; default 5s.
	RefreshTimeout time.Duration
	Now            func() time.Time
	Log            *slog.Logger
}

// Index is the in-memory set of approved digests the webhook decides from:
// which repositories hold them, until when they are approved, and whether
// their approval attestation verifies with the configured key.
type Index struct {
	o       IndexOptions
	gen     func() (uint64, bool)
	mu      sync.Mutex // serialises rebuilds
	snap    atomic.Pointer[snapshot]
	contact atomic.Int64 // unix nanos of the last successful read of the store
	lastErr atomic.Pointer[error]
}

type approved struct {
	digest  string
	parent  string // index through which a child manifest is approved
	repos   map[string]bool
	expires *time.Time
	updated time.Time
	// refusal is why the attestation did not verify; "" when it did.
	refusal   string
	transient bool
}

type snapshot struct {
	gen     uint64
	built   time.Time
	digests map[string]*approved
	tags    sync.Map // repo + ":" + tag → digest ("" when the tag points nowhere)
	ntags   atomic.Int64
	// retry: an attestation could not be read; rebuild on the next refresh.
	retry bool
}

// NewIndex makes an index; it reads the store on first use (or Refresh).
func NewIndex(o IndexOptions) (*Index, error) {
	if o.Store == nil {
		return nil, errors.New("admission index: no store")
	}
	if o.Key == nil {
		return nil, errors.New("admission index: no key to verify approval attestations with; configure admission.keyFile")
	}
	if o.ReadManifest == nil {
		return nil, errors.New("admission index: no way to read attestations from the registry")
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.MaxStale <= 0 {
		o.MaxStale = 10 * time.Second
	}
	if o.RefreshTimeout <= 0 {
		o.RefreshTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	x := &Index{o: o, gen: func() (uint64, bool) { return 0, false }}
	if g, ok := o.Store.(interface{ Generation() uint64 }); ok {
		x.gen = func() (uint64, bool) { return g.Generation(), true }
	}
	return x, nil
}

// Run refreshes the index every Interval until ctx ends, so that writes the
// generation does not see (another process, another replica) and an
// unreachable store are noticed without a request waiting for it.
func (x *Index) Run(ctx context.Context) {
	t := time.NewTicker(x.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := x.Refresh(ctx); err != nil && ctx.Err() == nil {
				x.o.Log.Warn("admission index refresh failed; decisions deny once it is stale", "err", err, "maxStale", x.o.MaxStale)
			}
		}
	}
}

// Refresh re-reads the store: fully when its generation changed (or it has
// none), otherwise a ping proving it is still reachable.
func (x *Index) Refresh(ctx context.Context) error {
	return x.refresh(ctx, true)
}

func (x *Index) refresh(ctx context.Context, periodic bool) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, x.o.RefreshTimeout)
	defer cancel()
	gen, hasGen := x.gen()
	cur := x.snap.Load()
	if cur != nil && hasGen && cur.gen == gen && !(periodic && cur.retry) {
		if !periodic && x.fresh() {
			return nil // another request rebuilt it while this one waited
		}
		if err := x.o.Store.Ping(ctx); err != nil {
			return x.failed(err)
		}
		x.touch()
		return nil
	}
	if cur != nil && !hasGen && !periodic && x.fresh() {
		return nil
	}
	next, err := x.build(ctx, gen, cur)
	if err != nil {
		return x.failed(err)
	}
	x.snap.Store(next)
	x.touch()
	return nil
}

func (x *Index) touch() {
	x.contact.Store(x.o.Now().UnixNano())
	x.lastErr.Store(nil)
}

func (x *Index) failed(err error) error {
	err = fmt.Errorf("read approvals from the store: %w", err)
	x.lastErr.Store(&err)
	return err
}

func (x *Index) fresh() bool {
	c := x.contact.Load()
	return c != 0 && x.o.Now().Sub(time.Unix(0, c)) <= x.o.MaxStale
}

// build reads every approved digest. Entries whose record did not change
// since the previous build and whose attestation verified are kept as they
// were; the rest have their attestations read and verified again.
func (x *Index) build(ctx context.Context, gen uint64, prev *snapshot) (*snapshot, error) {
	imgs, err := x.o.Store.Images(ctx, store.ImageFilter{State: store.Approved})
	if err != nil {
		return nil, err
	}
	next := &snapshot{gen: gen, built: x.o.Now(), digests: make(map[string]*approved, len(imgs))}
	add := func(digest, parent string, img store.Image) error {
		if old := prev.lookup(digest); old != nil && old.refusal == "" && old.updated.Equal(img.UpdatedAt) && old.parent == parent {
			next.digests[digest] = old
			return nil
		}
		a := &approved{digest: digest, parent: parent, repos: map[string]bool{}, expires: img.Expires, updated: img.UpdatedAt}
		for _, r := range img.Repositories {
			a.repos[r] = true
		}
		exp, err := x.verify(ctx, digest, parent)
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) {
				return err
			}
			a.refusal, a.transient = r.Reason, r.transient
			next.retry = next.retry || r.transient
		}
		if exp != nil && (a.expires == nil || exp.Before(*a.expires)) {
			a.expires = exp
		}
		next.digests[digest] = a
		return nil
	}
	for _, img := range imgs {
		if img.Subject != "" {
			continue // attestations and other referrers are not run
		}
		if err := add(img.Digest, "", img); err != nil {
			return nil, err
		}
		for _, c := range img.Children {
			if _, dup := next.digests[c.Digest]; dup {
				continue
			}
			if err := add(c.Digest, img.Digest, img); err != nil {
				return nil, err
			}
		}
	}
	return next, nil
}

func (s *snapshot) lookup(digest string) *approved {
	if s == nil {
		return nil
	}
	return s.digests[digest]
}

const maxEnvelope = 4 << 20

// maxCachedTags bounds the tag resolutions one snapshot keeps.
const maxCachedTags = 10000

// verify checks the newest unrevoked approval attestation of digest with the
// key: a DSSE signature over an in-toto statement naming digest, of the
// approval predicate type, deciding "approved" for digest (or its index
// parent). It returns the attestation's expiry. A *Refusal says why it did
// not verify; other errors are failures to read.
func (x *Index) verify(ctx context.Context, digest, parent string) (*time.Time, error) {
	atts, err := x.o.Store.Attestations(ctx, digest)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(atts, func(i, j int) bool { return atts[i].CreatedAt.After(atts[j].CreatedAt) })
	var why error = refuse("%s has no approval attestation; approve it through Airlock, which signs one", digest)
	for _, a := range atts {
		if a.PredicateType != attest.ApprovalPredicateType || a.RevokedAt != nil {
			continue
		}
		exp, err := x.verifyOne(ctx, digest, parent, a)
		if err == nil {
			return exp, nil
		}
		var r *Refusal
		if !errors.As(err, &r) {
			return nil, err
		}
		why = err
	}
	return nil, why
}

func (x *Index) verifyOne(ctx context.Context, digest, parent string, a store.Attestation) (*time.Time, error) {
	img, err := x.o.ReadManifest(ctx, a.Repository, a.Manifest)
	if err != nil {
		return nil, &Refusal{Reason: fmt.Sprintf("the approval attestation of %s (%s@%s) cannot be read from the registry: %v", digest, a.Repository, a.Manifest, err), transient: true}
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, refuse("the approval attestation of %s is not a valid manifest: %v", digest, err)
	}
	keyID := attest.KeyID(x.o.Key)
	for _, l := range m.Layers {
		if string(l.MediaType) != attest.MediaTypeDSSE {
			continue
		}
		if l.Size > maxEnvelope {
			return nil, refuse("the approval attestation of %s holds a %d-byte envelope, more than the %d allowed", digest, l.Size, maxEnvelope)
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return nil, refuse("the approval attestation of %s cannot be read: %v", digest, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, refuse("the approval attestation of %s cannot be read: %v", digest, err)
		}
		raw, err := io.ReadAll(io.LimitReader(rc, maxEnvelope+1))
		rc.Close()
		if err != nil || len(raw) > maxEnvelope {
			return nil, refuse("the approval attestation of %s cannot be read: %v", digest, err)
		}
		env, err := attest.ParseEnvelope(raw)
		if err != nil {
			return nil, refuse("the approval attestation of %s is not a DSSE envelope: %v", digest, err)
		}
		payload, err := attest.Verify(x.o.Key, env)
		if err != nil {
			return nil, refuse("the approval attestation of %s does not verify with the configured key %s: it was signed by another key or altered", digest, keyID)
		}
		st, err := attest.ParseStatement(payload)
		if err != nil {
			return nil, refuse("the approval attestation of %s holds no valid in-toto statement: %v", digest, err)
		}
		if st.PredicateType != attest.ApprovalPredicateType {
			continue
		}
		if !st.Covers(digest) {
			return nil, refuse("the approval attestation stored for %s names other digests: its subject was swapped", digest)
		}
		var pred attest.Approval
		if err := decodeStrict(st.Predicate, &pred); err != nil {
			return nil, refuse("the approval predicate of %s is malformed: %v", digest, err)
		}
		want := digest
		if parent != "" {
			want = parent
		}
		if pred.Decision != "approved" || (pred.Digest != want && pred.Digest != digest) {
			return nil, refuse("the attestation of %s does not approve it (decision %q for %s)", digest, pred.Decision, pred.Digest)
		}
		return pred.Expires, nil
	}
	return nil, refuse("the attestation manifest %s@%s of %s holds no signed approval", a.Repository, a.Manifest, digest)
}

// current returns a snapshot fresh enough to decide from: rebuilt first if
// the store's generation moved (a revocation is seen by the next request),
// and only if the store was reached within MaxStale.
func (x *Index) current(ctx context.Context) (*snapshot, error) {
	s := x.snap.Load()
	gen, hasGen := x.gen()
	if s != nil && (!hasGen || s.gen == gen) && x.fresh() {
		return s, nil
	}
	if err := x.refresh(ctx, false); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s = x.snap.Load()
	if s == nil || !x.fresh() {
		return nil, ErrUnavailable
	}
	return s, nil
}

// Check answers whether repo@digest may run: nil when the digest is
// approved, held in repo, not expired and its attestation verified; a
// *Refusal saying why not; or an error wrapping ErrUnavailable.
func (x *Index) Check(ctx context.Context, repo, digest string) error {
	s, err := x.current(ctx)
	if err != nil {
		return err
	}
	return x.check(s, repo, digest)
}

func (x *Index) check(s *snapshot, repo, digest string) error {
	a := s.digests[digest]
	if a == nil {
		return refuse("%s is not approved", digest)
	}
	if !a.repos[repo] {
		return refuse("%s is approved but not held in repository %s", digest, repo)
	}
	if a.expires != nil && !x.o.Now().Before(*a.expires) {
		return refuse("the approval of %s expired at %s", digest, a.expires.UTC().Format(time.RFC3339))
	}
	if a.refusal != "" {
		return &Refusal{Reason: a.refusal}
	}
	return nil
}

// Resolve returns the approved digest that repo:tag points to in the private
// registry, or a *Refusal saying why there is none. Answers are cached until
// the store changes.
func (x *Index) Resolve(ctx context.Context, repo, tag string) (string, error) {
	s, err := x.current(ctx)
	if err != nil {
		return "", err
	}
	if x.o.ResolveTag == nil {
		return "", refuse("tags are not resolved by this webhook")
	}
	key := repo + ":" + tag
	var dgst string
	if v, ok := s.tags.Load(key); ok {
		dgst = v.(string)
	} else {
		rctx, cancel := context.WithTimeout(ctx, x.o.RefreshTimeout)
		d, err := x.o.ResolveTag(rctx, repo, tag)
		cancel()
		if err != nil {
			return "", fmt.Errorf("%w: resolve %s: %v", ErrUnavailable, key, err)
		}
		// Bounded: pods naming endless made-up tags must not grow memory
		// until the next store write.
		if s.ntags.Add(1) <= maxCachedTags {
			s.tags.Store(key, d)
		}
		dgst = d
	}
	if dgst == "" {
		return "", refuse("%s is not in the private registry; import it with `airlock import`", key)
	}
	if err := x.check(s, repo, dgst); err != nil {
		return "", err
	}
	return dgst, nil
}

// Size is the number of approved digests (manifests and children) indexed.
func (x *Index) Size() int {
	if s := x.snap.Load(); s != nil {
		return len(s.digests)
	}
	return 0
}

// Age is how long ago the index last read the store successfully (0 before the first read).
func (x *Index) Age() time.Duration {
	c := x.contact.Load()
	if c == 0 {
		return 0
	}
	return x.o.Now().Sub(time.Unix(0, c))
}

// Store is the store the index reads (the webhook audits exemptions there).
func (x *Index) Store() store.Store { return x.o.Store }
