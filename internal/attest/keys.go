// Package attest signs Airlock's decisions so anyone can check them without
// trusting Airlock's database: keys (ECDSA P-256 or Ed25519, PEM, fully
// offline), DSSE envelopes around in-toto Statements, and their layout in a
// registry as cosign understands it (the sha256-<hex>.att tag and referrers).
package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Key types `airlock keys generate` makes.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyEd25519   = "ed25519"
)

// File names in the directory `airlock keys generate --out DIR` writes.
const (
	PrivateKeyFile = "signing.key"
	PublicKeyFile  = "signing.pub"
)

// GenerateKey makes a new signing key of the given type.
func GenerateKey(typ string) (crypto.Signer, error) {
	switch typ {
	case KeyECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("key type %q is not supported; use %s or %s", typ, KeyECDSAP256, KeyEd25519)
}

// MarshalPrivateKey encodes a key as PKCS #8 PEM ("PRIVATE KEY").
func MarshalPrivateKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// MarshalPublicKey encodes a public key as PKIX PEM ("PUBLIC KEY"), the form
// cosign's --key and `airlock verify --key` read.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyID names a public key: sha256 of its PKIX DER encoding.
func KeyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:])
}

// ParsePrivateKey reads a PEM private key (PKCS #8, or SEC 1 "EC PRIVATE KEY").
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block found; expected a PRIVATE KEY")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key; encrypted keys are not supported", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	return checkSigner(k)
}

func checkSigner(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported; use P-256", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("key type %T is not supported; use ECDSA P-256 or Ed25519", k)
}

// ParsePublicKey reads a PEM public key ("PUBLIC KEY", PKIX).
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block found; expected a PUBLIC KEY (print it with `airlock keys public`)")
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block %q is not a PUBLIC KEY (print one with `airlock keys public`)", blk.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported; use P-256", p.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("public key type %T is not supported; use ECDSA P-256 or Ed25519", pub)
	}
	return pub, nil
}

// LoadPrivateKey reads a private key file.
func LoadPrivateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// LoadPublicKey reads a public key file.
func LoadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyPair writes DIR/signing.key (0600) and DIR/signing.pub (0644). It
// refuses to overwrite an existing private key: losing one makes every
// attestation it signed unverifiable.
func WriteKeyPair(dir string, k crypto.Signer) (priv, pub string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	priv, pub = filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)
	if err := writePrivate(priv, k); err != nil {
		return "", "", err
	}
	pb, err := MarshalPublicKey(k.Public())
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pub, pb, 0o644); err != nil {
		return "", "", err
	}
	return priv, pub, nil
}

func writePrivate(path string, k crypto.Signer) error {
	b, err := MarshalPrivateKey(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; refusing to overwrite a signing key (move it away first)", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadOrCreateKey loads the key at path, or creates an ECDSA P-256 key there
// (mode 0600) when the file does not exist; created reports which.
func LoadOrCreateKey(path string) (k crypto.Signer, created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		k, err := LoadPrivateKey(path)
		return k, false, err
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("signing key: %w", err)
	}
	k, err = GenerateKey(KeyECDSAP256)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	if err := writePrivate(path, k); err != nil {
		return nil, false, err
	}
	return k, true, nil
}
