package registry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// generationer is a store that can tell whether anything was written since
// a given moment (the SQLite store counts its write transactions).
type generationer interface{ Generation() uint64 }

// gateCacheTTL bounds how long an answer is reused even when nothing was
// written in this process: another process (a second replica on a shared
// store) may have revoked the digest, and an approval may have expired.
const gateCacheTTL = time.Second

const gateCacheMax = 100000

// gateCache keeps the gate's recent answers so that pulls of approved
// content do not each cost a store query and a tag read. An answer is used
// only while the store has seen no write (and the registry no manifest
// write) since it was read, and for at most gateCacheTTL: a revocation in
// this process takes effect at once, elsewhere within a second.
type gateCache struct {
	gen    func() uint64 // store generation; nil disables the cache
	tagGen atomic.Uint64 // bumped by every manifest write or delete here
	mu     sync.RWMutex
	m      map[cacheKey]cacheEntry
}

type cacheKey struct {
	kind       byte // 'm' manifest, 'b' blob, 't' tag
	repo, item string
}

type cacheEntry struct {
	state  store.State
	found  bool
	digest string // tag → digest
	gen    uint64
	tagGen uint64
	until  time.Time
}

func newGateCache(st store.Store) *gateCache {
	c := &gateCache{m: map[cacheKey]cacheEntry{}}
	if g, ok := st.(generationer); ok {
		c.gen = g.Generation
	}
	return c
}

func (c *gateCache) get(k cacheKey) (cacheEntry, bool) {
	if c.gen == nil {
		return cacheEntry{}, false
	}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.gen != c.gen() || e.tagGen != c.tagGen.Load() || time.Now().After(e.until) {
		return cacheEntry{}, false
	}
	return e, true
}

// stamp returns the generations to store with an answer; read them before
// asking the store, so a write that lands meanwhile invalidates the answer.
func (c *gateCache) stamp() (uint64, uint64) {
	if c.gen == nil {
		return 0, 0
	}
	return c.gen(), c.tagGen.Load()
}

func (c *gateCache) put(k cacheKey, e cacheEntry, gen, tagGen uint64) {
	if c.gen == nil {
		return
	}
	e.gen, e.tagGen, e.until = gen, tagGen, time.Now().Add(gateCacheTTL)
	c.mu.Lock()
	if len(c.m) >= gateCacheMax {
		c.m = map[cacheKey]cacheEntry{}
	}
	c.m[k] = e
	c.mu.Unlock()
}

// manifestWritten invalidates every cached answer after a manifest or tag changed.
func (c *gateCache) manifestWritten() { c.tagGen.Add(1) }

// servableManifest is ManifestServable through the cache.
func (g *Registry) servableManifest(ctx context.Context, repo, digest string) (store.State, bool, error) {
	k := cacheKey{'m', repo, digest}
	if e, ok := g.cache.get(k); ok {
		return e.state, e.found, nil
	}
	gen, tg := g.cache.stamp()
	state, found, err := g.store.ManifestServable(ctx, repo, digest)
	if err == nil {
		g.cache.put(k, cacheEntry{state: state, found: found}, gen, tg)
	}
	return state, found, err
}

// servableBlob is BlobServable through the cache.
func (g *Registry) servableBlob(ctx context.Context, repo, digest string) (bool, error) {
	k := cacheKey{'b', repo, digest}
	if e, ok := g.cache.get(k); ok {
		return e.found, nil
	}
	gen, tg := g.cache.stamp()
	ok, err := g.store.BlobServable(ctx, repo, digest)
	if err == nil {
		g.cache.put(k, cacheEntry{found: ok}, gen, tg)
	}
	return ok, err
}

// tagDigest is resolveTag through the cache.
func (g *Registry) tagDigest(ctx context.Context, repo, tag string) (string, error) {
	k := cacheKey{'t', repo, tag}
	if e, ok := g.cache.get(k); ok {
		return e.digest, nil
	}
	gen, tg := g.cache.stamp()
	d, err := g.resolveTag(ctx, repo, tag)
	if err == nil {
		g.cache.put(k, cacheEntry{digest: d}, gen, tg)
	}
	return d, err
}
