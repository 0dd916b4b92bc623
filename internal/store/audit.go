package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// AuditHash computes the chain hash of e from e.PrevHash and e's other fields,
// ignoring e.Hash. Every backend and any outside verifier must compute it the
// same way, so the encoding is spelled out here:
//
//	hex(sha256(PrevHash + "\n" + canonical))
//	canonical = {"seq":N,"at":"<RFC 3339, nanoseconds, UTC>","actor":"…","action":"…","subject":"…","detail":<compact JSON or null>}
//
// encoded by encoding/json without HTML escaping and without a trailing
// newline. Detail is hashed byte for byte as compacted, so backends must store
// it as text, not as a JSON type that reorders keys (PostgreSQL jsonb).
func AuditHash(e AuditEntry) (string, error) {
	detail, err := CompactDetail(e.Detail)
	if err != nil {
		return "", err
	}
	body := struct {
		Seq     int64           `json:"seq"`
		At      string          `json:"at"`
		Actor   string          `json:"actor"`
		Action  string          `json:"action"`
		Subject string          `json:"subject"`
		Detail  json.RawMessage `json:"detail"`
	}{e.Seq, e.At.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Subject, detail}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return "", fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
	}
	canonical := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write([]byte("\n"))
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CompactDetail returns detail without insignificant whitespace, or nil for an
// empty detail, which is the form that is stored and hashed.
func CompactDetail(detail json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(detail)) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, detail); err != nil {
		return nil, fmt.Errorf("audit detail is not valid JSON: %w", err)
	}
	if bytes.Equal(buf.Bytes(), []byte("null")) {
		return nil, nil
	}
	return buf.Bytes(), nil
}
