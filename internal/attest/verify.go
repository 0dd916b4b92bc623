package attest

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Failure is a verification that ran and said no; Reason is one sentence.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return f.Reason }

func fail(format string, a ...any) error { return &Failure{Reason: fmt.Sprintf(format, a...)} }

// ApprovalState is what the server says of a digest now.
type ApprovalState struct {
	State     string     // quarantined, approved, rejected, revoked
	Expires   *time.Time // approval expiry
	ChangedAt time.Time  // of the last transition
	ChangedBy string
	Reason    string
}

// VerifyOptions configure VerifyImage.
type VerifyOptions struct {
	Key     crypto.PublicKey
	KeyName string // for messages, e.g. the file name
	Remote  []remote.Option
	// State asks the server for the digest's state (revocation); required.
	State func(ctx context.Context, digest string) (ApprovalState, error)
	Now   func() time.Time
}

// Verified is a verified approval.
type Verified struct {
	Digest      string    `json:"digest"`
	Repository  string    `json:"repository"`
	Source      string    `json:"source"` // the .att tag or referrer it was read from
	Statement   Statement `json:"statement"`
	Approval    Approval  `json:"approval"`
	ServerState string    `json:"serverState"`
}

// VerifyImage checks the approval attestation of ref: read from the
// sha256-<hex>.att tag next to the image (as cosign reads it), else from the
// referrers API; its DSSE signature with the key; the statement's subject;
// the predicate type; the approval's expiry; and, asking the server, that
// the digest was not revoked since. A *Failure says why it did not verify.
func VerifyImage(ctx context.Context, ref name.Reference, o VerifyOptions) (Verified, error) {
	var res Verified
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.State == nil {
		return res, errors.New("verify: no way to ask the server about revocation")
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, o.Remote...)
	digest := ""
	if d, ok := ref.(name.Digest); ok {
		digest = d.DigestStr()
	} else {
		desc, err := remote.Head(ref, ropts...)
		if err != nil {
			if code := statusOf(err); code == http.StatusForbidden || code == http.StatusNotFound {
				return res, fail("%s cannot be resolved to an approved digest: %v", ref, err)
			}
			return res, fmt.Errorf("resolve %s: %w", ref, err)
		}
		digest = desc.Digest.String()
	}
	repo := ref.Context()
	res.Digest, res.Repository = digest, repo.String()
	envs, src, err := fetchEnvelopes(repo, digest, ropts)
	if err != nil {
		return res, err
	}
	if len(envs) == 0 {
		return res, fail("%s has no approval attestation in %s (neither the tag %s nor a referrer)", digest, repo, AttTag(digest))
	}
	res.Source = src
	keyID := KeyID(o.Key)
	type good struct {
		st   Statement
		pred Approval
	}
	var goods []good
	var sigErr error
	for _, raw := range envs {
		env, err := ParseEnvelope(raw)
		if err != nil {
			sigErr = fail("the attestation of %s is not a valid DSSE envelope (%v): it was tampered with", digest, err)
			continue
		}
		if env.PayloadType != PayloadTypeInToto {
			continue
		}
		payload, err := Verify(o.Key, env)
		if err != nil {
			// An approval's failure says most; keep it over another type's.
			if sigErr == nil || claimsApproval(env) {
				sigErr = signatureFailure(digest, env, keyID, o.KeyName)
			}
			continue
		}
		st, err := ParseStatement(payload)
		if err != nil || st.PredicateType != ApprovalPredicateType {
			continue
		}
		var pred Approval
		if err := json.Unmarshal(st.Predicate, &pred); err != nil {
			return res, fail("the approval predicate of %s is malformed: %v", digest, err)
		}
		goods = append(goods, good{st, pred})
	}
	if len(goods) == 0 {
		if sigErr != nil {
			return res, sigErr
		}
		return res, fail("%s has no attestation of type %s", digest, ApprovalPredicateType)
	}
	// The newest approval is the one in force.
	sort.Slice(goods, func(i, j int) bool { return goods[i].pred.ApprovedAt.After(goods[j].pred.ApprovedAt) })
	g := goods[0]
	res.Statement, res.Approval = g.st, g.pred
	if !g.st.Covers(digest) {
		var names []string
		for _, s := range g.st.Subject {
			for alg, h := range s.Digest {
				names = append(names, alg+":"+h)
			}
		}
		return res, fail("the attestation found for %s was made for %v, not for this digest: its subject was swapped", digest, names)
	}
	now := o.Now()
	if g.pred.Expires != nil && !now.Before(*g.pred.Expires) {
		return res, fail("the approval of %s expired at %s", digest, g.pred.Expires.UTC().Format(time.RFC3339))
	}
	// A child of an approved index is approved through the index.
	approved := digest
	if g.pred.Digest != "" {
		approved = g.pred.Digest
	}
	state, err := o.State(ctx, approved)
	if err != nil {
		return res, fmt.Errorf("cannot check whether %s was revoked: %w", approved, err)
	}
	res.ServerState = state.State
	switch {
	case state.State == "revoked":
		return res, fail("%s was revoked at %s by %s: %s", approved, state.ChangedAt.UTC().Format(time.RFC3339), state.ChangedBy, state.Reason)
	case state.State == "approved" && state.Expires != nil && !now.Before(*state.Expires):
		return res, fail("the approval of %s expired at %s", approved, state.Expires.UTC().Format(time.RFC3339))
	case state.State != "approved":
		return res, fail("%s is %s on the server, not approved (%s)", approved, state.State, state.Reason)
	}
	return res, nil
}

// signatureFailure tells a wrong key from an altered envelope: the
// (unverified) statement names the key that signed it.
func signatureFailure(digest string, env Envelope, keyID, keyName string) error {
	if keyName == "" {
		keyName = "the given key"
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err == nil {
		if st, err := ParseStatement(payload); err == nil {
			var pred Approval
			if json.Unmarshal(st.Predicate, &pred) == nil && pred.Signer.KeyID != "" && pred.Signer.KeyID != keyID {
				return fail("the attestation of %s was signed by another key (%s), not by %s (%s)", digest, pred.Signer.KeyID, keyName, keyID)
			}
		}
	}
	return fail("the attestation of %s does not verify with %s: the envelope was altered after it was signed", digest, keyName)
}

const maxAttestationLayer = 4 << 20

// fetchEnvelopes reads the DSSE layers of the .att tag, else of referrers.
func fetchEnvelopes(repo name.Repository, digest string, ropts []remote.Option) ([][]byte, string, error) {
	tag := repo.Tag(AttTag(digest))
	img, err := remote.Image(tag, ropts...)
	if err == nil {
		envs, err := dsseLayers(img)
		return envs, tag.String(), err
	}
	if code := statusOf(err); code != http.StatusNotFound {
		return nil, "", fmt.Errorf("read %s: %w", tag, err)
	}
	idx, err := remote.Referrers(repo.Digest(digest), ropts...)
	if err != nil {
		if code := statusOf(err); code == http.StatusNotFound {
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("referrers of %s: %w", digest, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	var out [][]byte
	for _, m := range im.Manifests {
		if m.ArtifactType != MediaTypeDSSE {
			continue
		}
		img, err := remote.Image(repo.Digest(m.Digest.String()), ropts...)
		if err != nil {
			return nil, "", fmt.Errorf("read referrer %s: %w", m.Digest, err)
		}
		envs, err := dsseLayers(img)
		if err != nil {
			return nil, "", err
		}
		out = append(out, envs...)
	}
	return out, "referrers of " + repo.Digest(digest).String(), nil
}

func dsseLayers(img v1.Image) ([][]byte, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, l := range m.Layers {
		if string(l.MediaType) != MediaTypeDSSE {
			continue
		}
		// Only approvals decide; SBOM and scan attestations beside them can
		// be large and are not read (an unannotated layer is read: it may be one).
		if t, ok := l.Annotations[AnnotationPredicateType]; ok && t != ApprovalPredicateType {
			continue
		}
		if l.Size > maxAttestationLayer {
			return nil, fail("attestation layer %s is %d bytes, larger than the limit of %d", l.Digest, l.Size, maxAttestationLayer)
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return nil, err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxAttestationLayer+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read attestation layer %s: %w", l.Digest, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// claimsApproval reports whether an (unverified) envelope says it holds an approval.
func claimsApproval(env Envelope) bool {
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return false
	}
	st, err := ParseStatement(payload)
	return err == nil && st.PredicateType == ApprovalPredicateType
}
