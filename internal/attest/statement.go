package attest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// StatementType is the in-toto Statement v1 type.
const StatementType = "https://in-toto.io/Statement/v1"

// ApprovalPredicateType is the predicate type of Airlock's approval
// attestation (`cosign verify-attestation --type` takes it as is).
const ApprovalPredicateType = "https://airlock.dev/attestations/approval/v1"

// Statement is an in-toto Statement v1.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject is one artifact a statement is about: an image or index digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// SubjectOf makes a subject from a repository name and a sha256 digest.
func SubjectOf(name, digest string) Subject {
	alg, hex, _ := strings.Cut(digest, ":")
	return Subject{Name: name, Digest: map[string]string{alg: hex}}
}

// Covers reports whether the statement names digest ("sha256:<hex>") as a subject.
func (s Statement) Covers(digest string) bool {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return false
	}
	for _, sub := range s.Subject {
		if sub.Digest[alg] == hex {
			return true
		}
	}
	return false
}

// Approval is the predicate of an approval attestation: what was decided,
// under which policy, on which evidence, by whom, when and until when.
type Approval struct {
	Decision   string      `json:"decision"` // approved
	Digest     string      `json:"digest"`   // the image or index approved
	MediaType  string      `json:"mediaType,omitempty"`
	Reason     string      `json:"reason"`
	ApprovedAt time.Time   `json:"approvedAt"`
	Expires    *time.Time  `json:"expires,omitempty"`
	Approvers  []Approver  `json:"approvers"`
	Required   int         `json:"requiredApprovers"`
	Policy     PolicyRef   `json:"policy"`
	Evidence   []Evidence  `json:"evidence"`
	Source     *SourceRef  `json:"source,omitempty"`
	Signer     SignerRef   `json:"signer"`
	Airlock    AirlockInfo `json:"airlock"`
}

// Approver is one person (token) who approved.
type Approver struct {
	Name    string     `json:"name"`
	At      time.Time  `json:"at"`
	Reason  string     `json:"reason"`
	Expires *time.Time `json:"expires,omitempty"`
}

// PolicyRef names the policy version the decision was made under and its verdict.
type PolicyRef struct {
	Name    string   `json:"name"`
	Digest  string   `json:"digest"`
	Verdict string   `json:"verdict"`              // allow, review or deny
	Rules   []string `json:"firedRules,omitempty"` // rules that fired
}

// Evidence is one vetting stage and what it produced. Stages that did not
// run are listed as such: an approval never hides missing evidence.
type Evidence struct {
	Stage  string `json:"stage"`
	Status string `json:"status"`           // done, not-run, failed, pending, missing
	Digest string `json:"digest,omitempty"` // sha256 of the stage's recorded evidence
}

// SourceRef is the documented source of the digest.
type SourceRef struct {
	Reference  string    `json:"reference"`
	Registry   string    `json:"registry,omitempty"`
	ResolvedAt time.Time `json:"resolvedAt"`
	TagMoved   bool      `json:"tagMoved,omitempty"`
}

// SignerRef names the key that signed (see KeyID).
type SignerRef struct {
	KeyID string `json:"keyId"`
}

// AirlockInfo names the server that signed.
type AirlockInfo struct {
	Version      string `json:"version"`
	RegistryHost string `json:"registryHost,omitempty"`
}

// ParseStatement decodes a statement and checks its type.
func ParseStatement(b []byte) (Statement, error) {
	var s Statement
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("payload is not an in-toto statement: %w", err)
	}
	if s.Type != StatementType {
		return s, fmt.Errorf("payload _type %q is not %s", s.Type, StatementType)
	}
	return s, nil
}
