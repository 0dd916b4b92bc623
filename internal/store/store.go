// Package store keeps the record of every image Airlock has seen: where it came
// from, its vetting state and the history of that state, which blobs and child
// manifests it holds, its referrers, the API tokens, and an append-only,
// hash-chained audit log. Backends (SQLite now, PostgreSQL later) implement Store
// and pass the same conformance suite in storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// State is the vetting state of a digest.
type State string

const (
	Quarantined State = "quarantined"
	Approved    State = "approved"
	Rejected    State = "rejected"
	Revoked     State = "revoked"
)

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case Quarantined, Approved, Rejected, Revoked:
		return true
	}
	return false
}

// Errors callers decide on.
var (
	ErrNotFound          = errors.New("not found")
	ErrExists            = errors.New("already exists")
	ErrInvalidTransition = errors.New("invalid state transition")
	ErrAuditTampered     = errors.New("audit log does not verify")
)

// Platform of one child of an image index.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// Child is a manifest listed by an image index.
type Child struct {
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType"`
	Platform  *Platform `json:"platform,omitempty"`
}

// Manifest is what the registry learned from one manifest push or import into
// one repository.
type Manifest struct {
	Repository   string
	Digest       string
	MediaType    string
	ArtifactType string // artifactType, or the config media type of an artifact manifest
	Size         int64
	Subject      string            // digest named by the manifest's subject field, if any
	Blobs        []string          // config and layer digests (image manifests)
	Children     []Child           // child manifests (indexes)
	Annotations  map[string]string // manifest annotations (referrers API lists them)
	Actor        string            // token name that pushed or imported it
}

// Transition is one change of state.
type Transition struct {
	From    State      `json:"from"`
	To      State      `json:"to"`
	Actor   string     `json:"actor"`
	Reason  string     `json:"reason"`
	At      time.Time  `json:"at"`
	Expires *time.Time `json:"expires,omitempty"`
}

// Image is the record of one digest, whatever repositories hold it.
type Image struct {
	Digest       string          `json:"digest"`
	MediaType    string          `json:"mediaType"`
	ArtifactType string          `json:"artifactType,omitempty"`
	Size         int64           `json:"size"`
	State        State           `json:"state"`
	Expires      *time.Time      `json:"expires,omitempty"` // approval expiry
	Repositories []string        `json:"repositories"`
	Subject      string          `json:"subject,omitempty"`
	Children     []Child         `json:"children,omitempty"`
	Source       json.RawMessage `json:"source,omitempty"` // documented source, filled by import
	CreatedAt    time.Time       `json:"createdAt"`
	UpdatedAt    time.Time       `json:"updatedAt"`
	History      []Transition    `json:"history"`
}

// Referrer is one manifest whose subject is another digest, as the referrers API lists it.
type Referrer struct {
	Digest       string            `json:"digest"`
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	State        State             `json:"-"`
}

// ImageFilter narrows Images.
type ImageFilter struct {
	State      State  // empty: any
	Repository string // empty: any
	Limit      int    // 0: no limit
}

// Role of a token.
type Role string

const (
	RolePuller   Role = "puller"
	RolePusher   Role = "pusher"
	RoleApprover Role = "approver"
	RoleScanner  Role = "scanner"
	RoleAdmin    Role = "admin"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RolePuller, RolePusher, RoleApprover, RoleScanner, RoleAdmin:
		return true
	}
	return false
}

// Token is an API/registry credential. Only the SHA-256 hash of the secret is stored.
type Token struct {
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Hash      string     `json:"-"` // hex sha256 of the secret
	CreatedBy string     `json:"createdBy"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Revoked   bool       `json:"revoked"`
}

// AuditEntry is one row of the append-only audit log. Hash = sha256 over
// PrevHash and the canonical encoding of the other fields; editing any row
// breaks the chain from that row on.
type AuditEntry struct {
	Seq      int64           `json:"seq"`
	At       time.Time       `json:"at"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`  // e.g. "state.approved", "request.denied", "serve.allow-unvetted"
	Subject  string          `json:"subject"` // digest, repository or token name
	Detail   json.RawMessage `json:"detail,omitempty"`
	PrevHash string          `json:"prevHash"`
	Hash     string          `json:"hash"`
}

// AuditFilter narrows AuditEntries.
type AuditFilter struct {
	Subject  string
	Action   string
	AfterSeq int64
	Limit    int
}

// Store is everything the rest of Airlock needs from the record.
type Store interface {
	// RecordManifest records a pushed or imported manifest in a repository.
	// A digest seen for the first time starts Quarantined; a known digest keeps
	// its state and gains the repository. Recording is idempotent.
	RecordManifest(ctx context.Context, m Manifest) (Image, error)
	// ForgetManifest removes a repository's link to a digest (manifest delete).
	// The image record and its history stay.
	ForgetManifest(ctx context.Context, repository, digest string) error
	// SetSource stores the documented source of a digest (import).
	SetSource(ctx context.Context, digest string, source json.RawMessage) error

	Image(ctx context.Context, digest string) (Image, error)
	Images(ctx context.Context, f ImageFilter) ([]Image, error)

	// Transition moves a digest to a new state, validating the move
	// (quarantined→approved|rejected, approved→revoked, rejected→quarantined,
	// revoked→quarantined), and appends an audit entry in the same transaction.
	Transition(ctx context.Context, digest string, to State, actor, reason string, expires *time.Time) (Image, error)

	// ManifestServable reports the effective state of digest in repository for
	// the gate: Approved (and not expired) if the digest itself is approved or is
	// a child of an approved index held in that repository; otherwise the
	// digest's own state. found is false for a digest the repository does not hold.
	ManifestServable(ctx context.Context, repository, digest string) (state State, found bool, err error)
	// BlobServable reports whether blob belongs to at least one manifest in
	// repository whose effective state is Approved (not expired).
	BlobServable(ctx context.Context, repository, blob string) (bool, error)
	// Referrers lists manifests in repository whose subject is digest.
	Referrers(ctx context.Context, repository, digest string) ([]Referrer, error)

	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash string) (Token, error)
	Tokens(ctx context.Context) ([]Token, error)
	RevokeToken(ctx context.Context, name, actor string) error

	// Audit appends an entry (Seq, At, PrevHash, Hash are filled in).
	Audit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// VerifyAudit walks the whole chain; on a broken link it returns the number
	// of good entries and an error wrapping ErrAuditTampered naming the row.
	VerifyAudit(ctx context.Context) (int64, error)

	Imports
	Jobs
	Decisions
	Reevaluations
	Waivers
	Lineages

	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Lineage records that one image was made from another by Airlock (a
// hardened image from its original): the derived digest is a separate
// record with its own state, linked to the digest it came from.
type Lineage struct {
	Original   string          `json:"original"`
	Derived    string          `json:"derived"`
	Kind       string          `json:"kind"` // how it was derived, e.g. "hardened"
	Repository string          `json:"repository"`
	Detail     json.RawMessage `json:"detail,omitempty"` // e.g. the profile and report digests
	Actor      string          `json:"actor"`
	CreatedAt  time.Time       `json:"createdAt"`
}

// Lineages link derived images to their originals.
type Lineages interface {
	// RecordLineage stores l; both digests must be recorded images
	// (ErrNotFound otherwise). Recording the same original, derived and kind
	// again returns the stored record unchanged. The first recording is
	// audited as "image.derived".
	RecordLineage(ctx context.Context, l Lineage) (Lineage, error)
	// DerivedFrom lists the images made from original, oldest first.
	DerivedFrom(ctx context.Context, original string) ([]Lineage, error)
	// OriginsOf lists what derived was made from, oldest first.
	OriginsOf(ctx context.Context, derived string) ([]Lineage, error)
}
