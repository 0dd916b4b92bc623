package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// PayloadTypeInToto is the DSSE payload type of an in-toto Statement; cosign
// refuses attestations with any other.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// Envelope is a DSSE v1 envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"` // standard base64
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature of an envelope. KeyID stays empty, as cosign
// writes it: verifiers are told the key, they do not look it up.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // standard base64
}

// ErrBadSignature means no signature of an envelope verifies with the key.
var ErrBadSignature = errors.New("signature does not verify")

// PAE is DSSE's pre-authentication encoding: what is actually signed, so the
// payload type is bound to the payload.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// Sign wraps payload in an envelope signed by k: ECDSA signs SHA-256 of the
// PAE (ASN.1 DER signature), Ed25519 signs the PAE itself.
func Sign(k crypto.Signer, payloadType string, payload []byte) (Envelope, error) {
	pae := PAE(payloadType, payload)
	var sig []byte
	var err error
	switch k.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(pae)
		sig, err = k.Sign(rand.Reader, h[:], crypto.SHA256)
	case ed25519.PrivateKey:
		sig, err = k.Sign(rand.Reader, pae, crypto.Hash(0))
	default:
		return Envelope{}, fmt.Errorf("key type %T is not supported; use ECDSA P-256 or Ed25519", k)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("sign: %w", err)
	}
	return Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	}, nil
}

// Verify checks that at least one signature of e verifies with pub and
// returns the decoded payload. It wraps ErrBadSignature when none does.
func Verify(pub crypto.PublicKey, e Envelope) ([]byte, error) {
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("envelope payload is not base64: %w", err)
	}
	if len(e.Signatures) == 0 {
		return nil, fmt.Errorf("%w: the envelope has no signature", ErrBadSignature)
	}
	pae := PAE(e.PayloadType, payload)
	for _, s := range e.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			continue
		}
		switch p := pub.(type) {
		case *ecdsa.PublicKey:
			h := sha256.Sum256(pae)
			if ecdsa.VerifyASN1(p, h[:], sig) {
				return payload, nil
			}
		case ed25519.PublicKey:
			if ed25519.Verify(p, pae, sig) {
				return payload, nil
			}
		default:
			return nil, fmt.Errorf("public key type %T is not supported", pub)
		}
	}
	return nil, ErrBadSignature
}

// ParseEnvelope decodes an envelope, bounded and strict about its shape.
func ParseEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) > maxEnvelope {
		return e, fmt.Errorf("envelope of %d bytes is larger than the limit of %d", len(b), maxEnvelope)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("envelope is not DSSE JSON: %w", err)
	}
	if e.PayloadType == "" || e.Payload == "" {
		return e, errors.New("envelope lacks payloadType or payload")
	}
	return e, nil
}

const maxEnvelope = 4 << 20
