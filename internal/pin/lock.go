package pin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
)

// Resolver maps image references to approved private digests: an airlock
// server (server.Client) or a lock file.
type Resolver interface {
	Resolve(ctx context.Context, items []server.ResolveItem) ([]server.Resolution, error)
}

// LockVersion is the format of lock files this package writes.
const LockVersion = 1

// Lock records what each reference was pinned to, when, by which server and
// why, so that pin works offline (`--lock airlock.lock`).
type Lock struct {
	Version int         `json:"version"`
	Comment string      `json:"comment,omitempty"`
	Entries []LockEntry `json:"entries"`
}

// LockEntry is one resolution.
type LockEntry struct {
	Reference  string      `json:"reference"`
	Platform   string      `json:"platform,omitempty"`
	Repository string      `json:"repository,omitempty"`
	Tag        string      `json:"tag,omitempty"`
	Digest     string      `json:"digest,omitempty"` // approved digest; empty when none
	Pinned     string      `json:"pinned,omitempty"`
	State      store.State `json:"state,omitempty"`
	Private    bool        `json:"private,omitempty"`
	Error      string      `json:"error,omitempty"` // why it was not pinned
	ResolvedAt time.Time   `json:"resolvedAt"`
	Server     string      `json:"server,omitempty"`
}

func lockKey(ref, platform string) string { return ref + "\x00" + platform }

// ReadLock reads a lock file; a missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	l := &Lock{Version: LockVersion}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("%s is not an airlock lock file: %w", path, err)
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("%s has lock version %d; this airlock reads version %d", path, l.Version, LockVersion)
	}
	return l, nil
}

// Write saves the lock atomically, entries sorted so that diffs are small.
func (l *Lock) Write(path string) error {
	l.Version = LockVersion
	l.Comment = "written by `airlock pin --write --lock`: image references and the approved digests they were pinned to"
	sort.Slice(l.Entries, func(i, j int) bool {
		a, b := l.Entries[i], l.Entries[j]
		if a.Reference != b.Reference {
			return a.Reference < b.Reference
		}
		return a.Platform < b.Platform
	})
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	return writeAtomic(path, append(b, '\n'), mode)
}

// Resolve answers from the lock alone. A reference the lock does not name
// but whose digest it records as approved (the pinned form written by an
// earlier run) is approved; anything else is reported, never guessed.
func (l *Lock) Resolve(_ context.Context, items []server.ResolveItem) ([]server.Resolution, error) {
	byKey := map[string]LockEntry{}
	byDigest := map[string][]LockEntry{}
	for _, e := range l.Entries {
		byKey[lockKey(e.Reference, e.Platform)] = e
		if e.Digest != "" && e.Error == "" {
			byDigest[e.Digest] = append(byDigest[e.Digest], e)
		}
	}
	out := make([]server.Resolution, 0, len(items))
	for _, it := range items {
		if e, ok := byKey[lockKey(it.Reference, it.Platform)]; ok {
			out = append(out, server.Resolution{Reference: it.Reference, Platform: it.Platform, Repository: e.Repository, Tag: e.Tag,
				Digest: e.Digest, Pinned: e.Pinned, State: e.State, Private: e.Private, Error: e.Error})
			continue
		}
		out = append(out, l.byDigest(it, byDigest))
	}
	return out, nil
}

func (l *Lock) byDigest(it server.ResolveItem, byDigest map[string][]LockEntry) server.Resolution {
	res := server.Resolution{Reference: it.Reference, Platform: it.Platform,
		Error: "not in the lock file: run `airlock pin --write --lock FILE` with the server reachable"}
	img, ok := parseImage(it.Reference)
	if !ok || img.Digest == "" {
		return res
	}
	for _, e := range byDigest[img.Digest] {
		host := registryHost(e.Pinned)
		repo := strings.TrimPrefix(img.Name, host+"/")
		private := host != "" && strings.HasPrefix(img.Name, host+"/")
		if private && repo != e.Repository {
			continue
		}
		res.Error = ""
		res.Repository, res.Digest, res.State, res.Private = e.Repository, img.Digest, store.Approved, private
		res.Tag = img.Tag
		res.Pinned = host + "/" + e.Repository
		if img.Tag != "" {
			res.Pinned += ":" + img.Tag
		}
		res.Pinned += "@" + img.Digest
		return res
	}
	return res
}

// update records this run's resolutions. Entries for references no longer
// in the files are dropped unless a current reference is their pinned form.
func (l *Lock) update(res []server.Resolution, serverURL string, now time.Time, current map[string]bool) {
	old := map[string]LockEntry{}
	for _, e := range l.Entries {
		old[lockKey(e.Reference, e.Platform)] = e
	}
	next := map[string]LockEntry{}
	for _, r := range res {
		e := LockEntry{Reference: r.Reference, Platform: r.Platform, Repository: r.Repository, Tag: r.Tag, Digest: r.Digest,
			Pinned: r.Pinned, State: r.State, Private: r.Private, Error: r.Error, ResolvedAt: now.UTC(), Server: serverURL}
		k := lockKey(r.Reference, r.Platform)
		if o, ok := old[k]; ok && o.Digest == e.Digest && o.State == e.State && o.Pinned == e.Pinned && o.Error == e.Error {
			e.ResolvedAt, e.Server = o.ResolvedAt, o.Server
		}
		next[k] = e
	}
	for k, o := range old {
		if _, ok := next[k]; ok {
			continue
		}
		if current[o.Pinned] || current[o.Reference] {
			next[k] = o
		}
	}
	l.Entries = l.Entries[:0]
	for _, e := range next {
		l.Entries = append(l.Entries, e)
	}
}

// registryHost is the host of a pinned reference (REGISTRY/repo:tag@digest).
func registryHost(pinned string) string {
	if i := strings.IndexByte(pinned, '/'); i > 0 {
		return pinned[:i]
	}
	return ""
}

// writeAtomic replaces path with data through a temporary file in the same
// directory, with mode: a crash leaves the old file or the new one.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".airlock-pin-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
