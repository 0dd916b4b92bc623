package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/source"
	"github.com/airlock-dev/airlock/internal/store"
)

// Resolution is what an image reference means in the private registry: the
// private name, and the approved digest it may be pinned to (if any).
type Resolution struct {
	Reference  string      `json:"reference"`            // as asked
	Platform   string      `json:"platform,omitempty"`   // as asked
	Repository string      `json:"repository,omitempty"` // private repository
	Tag        string      `json:"tag,omitempty"`
	Digest     string      `json:"digest,omitempty"` // approved digest to pin to; empty when none
	Pinned     string      `json:"pinned,omitempty"` // REGISTRY/repo:tag@digest
	State      store.State `json:"state,omitempty"`  // state of the digest the reference points to now
	Private    bool        `json:"private"`          // the reference already names the private registry
	Error      string      `json:"error,omitempty"`  // why it cannot be pinned
}

// ResolveRequest asks for many references at once (POST /api/v1/resolve).
type ResolveRequest struct {
	References []ResolveItem `json:"references"`
}

// ResolveItem is one reference, optionally for one platform.
type ResolveItem struct {
	Reference string `json:"reference"`
	Platform  string `json:"platform,omitempty"`
}

const maxResolve = 10000

func (s *Server) resolveAPI(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/resolve", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		var req ResolveRequest
		if !decode(w, r, &req) {
			return
		}
		if len(req.References) > maxResolve {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("at most %d references per request", maxResolve))
			return
		}
		out := make([]Resolution, 0, len(req.References))
		for _, it := range req.References {
			res, err := s.Resolve(r.Context(), it.Reference, it.Platform)
			if err != nil {
				s.storeError(w, err)
				return
			}
			out = append(out, res)
		}
		writeJSON(w, http.StatusOK, out)
	}))
}

// Resolve maps an image reference to its private copy and the approved
// digest to pin it to. A reference that names a digest is checked, not
// trusted; a tag resolves to the digest the private registry holds for it,
// which for an approved digest never moves (approved tags are immutable),
// so a tag moved upstream still maps to what was approved. Nothing approved
// is reported, never guessed. Errors are for the store being unreachable;
// everything about the reference itself goes into Resolution.Error.
func (s *Server) Resolve(ctx context.Context, ref, platform string) (Resolution, error) {
	res := Resolution{Reference: ref, Platform: platform}
	src, err := source.Parse(ref, false)
	if err != nil || src.Transport != source.Registry {
		res.Error = fmt.Sprintf("%q is not an image reference", ref)
		return res, nil
	}
	host := s.Config.RegistryHost
	if src.Registry == host {
		res.Private = true
		res.Repository = src.Repository
	} else {
		res.Repository = source.PrivateRepository(src, s.Importer.Mappings)
	}
	res.Tag = src.Tag
	digest := src.Digest
	if digest == "" {
		d, err := s.Registry.ResolveTag(ctx, res.Repository, src.Tag)
		if err != nil {
			return res, err
		}
		if d == "" {
			res.Error = fmt.Sprintf("%s:%s is not in the private registry; import it with `airlock import %s`", res.Repository, src.Tag, ref)
			return res, nil
		}
		digest = d
	}
	state, found, err := s.Store.ManifestServable(ctx, res.Repository, digest)
	if err != nil {
		return res, err
	}
	if !found {
		res.Error = fmt.Sprintf("%s@%s is not in the private registry", res.Repository, digest)
		return res, nil
	}
	res.State = state
	if state != store.Approved {
		res.Error = fmt.Sprintf("%s is %s, not approved", digest, state)
		return res, nil
	}
	if platform != "" {
		img, err := s.Store.Image(ctx, digest)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return res, err
		}
		for _, c := range img.Children {
			if c.Platform != nil && platformString(c.Platform) == platform {
				digest = c.Digest
				break
			}
		}
	}
	res.Digest = digest
	res.Pinned = host + "/" + res.Repository
	if res.Tag != "" {
		res.Pinned += ":" + res.Tag
	}
	res.Pinned += "@" + digest
	return res, nil
}

func platformString(p *store.Platform) string {
	parts := []string{p.OS, p.Architecture}
	if p.Variant != "" {
		parts = append(parts, p.Variant)
	}
	return strings.Join(parts, "/")
}
