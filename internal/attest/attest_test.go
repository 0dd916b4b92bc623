package attest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The DSSE specification's own example of the pre-authentication encoding.
func TestPAE(t *testing.T) {
	got := string(PAE("http://example.com/HelloWorld", []byte("hello world")))
	if want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"; got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
	if got := string(PAE("", nil)); got != "DSSEv1 0  0 " {
		t.Fatalf("PAE of empties = %q", got)
	}
}

func TestSignVerify(t *testing.T) {
	for _, typ := range []string{KeyECDSAP256, KeyEd25519} {
		t.Run(typ, func(t *testing.T) {
			k, err := GenerateKey(typ)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := GenerateKey(typ)
			payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
			env, err := Sign(k, PayloadTypeInToto, payload)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Verify(k.Public(), env)
			if err != nil || string(got) != string(payload) {
				t.Fatalf("Verify = %q, %v", got, err)
			}
			if _, err := Verify(other.Public(), env); !errors.Is(err, ErrBadSignature) {
				t.Errorf("another key verifies: %v", err)
			}
			// The payload type is signed too.
			swapped := env
			swapped.PayloadType = "text/plain"
			if _, err := Verify(k.Public(), swapped); !errors.Is(err, ErrBadSignature) {
				t.Errorf("changed payloadType verifies: %v", err)
			}
			edited := env
			edited.Payload = base64.StdEncoding.EncodeToString(append(payload, ' '))
			if _, err := Verify(k.Public(), edited); !errors.Is(err, ErrBadSignature) {
				t.Errorf("edited payload verifies: %v", err)
			}
			none := env
			none.Signatures = nil
			if _, err := Verify(k.Public(), none); !errors.Is(err, ErrBadSignature) {
				t.Errorf("no signature verifies: %v", err)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range []string{KeyECDSAP256, KeyEd25519} {
		k, _ := GenerateKey(typ)
		priv, pub, err := WriteKeyPair(filepath.Join(dir, typ), k)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s private key mode %v, %v; want 0600", typ, fi.Mode(), err)
		}
		if _, _, err := WriteKeyPair(filepath.Join(dir, typ), k); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
			t.Errorf("overwriting a key: %v", err)
		}
		k2, err := LoadPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := LoadPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if KeyID(k2.Public()) != KeyID(k.Public()) || KeyID(p2) != KeyID(k.Public()) {
			t.Errorf("%s: keys do not round-trip", typ)
		}
	}
	if _, err := GenerateKey("rsa"); err == nil {
		t.Error("rsa keys are not supported")
	}
	if _, err := ParsePublicKey([]byte("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")); err == nil || !strings.Contains(err.Error(), "not a PUBLIC KEY") {
		t.Errorf("a private key block given as public key: %v", err)
	}
	// LoadOrCreate creates once, then loads.
	path := filepath.Join(dir, "data", "signing.key")
	k, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey: created=%v, %v", created, err)
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || KeyID(k2.Public()) != KeyID(k.Public()) {
		t.Fatalf("second LoadOrCreateKey: created=%v, %v", created, err)
	}
}

func TestManifestLayout(t *testing.T) {
	k, _ := GenerateKey(KeyECDSAP256)
	st := Statement{Type: StatementType, PredicateType: ApprovalPredicateType, Predicate: json.RawMessage(`{}`),
		Subject: []Subject{SubjectOf("r/app", "sha256:"+strings.Repeat("b", 64))}}
	env, err := SignStatement(k, st)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Manifest(env, ApprovalPredicateType, mustDesc(t, "sha256:"+strings.Repeat("b", 64)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	var m struct {
		ArtifactType string `json:"artifactType"`
		Layers       []struct {
			MediaType   string            `json:"mediaType"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
		Subject struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != MediaTypeDSSE || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeDSSE ||
		m.Layers[0].Annotations[AnnotationPredicateType] != ApprovalPredicateType || m.Subject.Digest != "sha256:"+strings.Repeat("b", 64) {
		t.Fatalf("manifest %s", raw)
	}
	if _, ok := m.Layers[0].Annotations[AnnotationSignature]; !ok {
		t.Error("the cosign signature annotation is missing")
	}
	if AttTag("sha256:abc") != "sha256-abc.att" {
		t.Error("AttTag")
	}
}

func FuzzParseEnvelope(f *testing.F) {
	k, _ := GenerateKey(KeyECDSAP256)
	env, _ := Sign(k, PayloadTypeInToto, []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`))
	b, _ := json.Marshal(env)
	f.Add(b)
	f.Add([]byte(`{"payloadType":"x","payload":"!!","signatures":[{"sig":"%%"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		if p, err := Verify(k.Public(), e); err == nil {
			if _, err := ParseStatement(p); err != nil && string(p) != "" {
				_ = err // a verified payload may still be any JSON; it must not panic
			}
		}
	})
}

func mustDesc(t *testing.T, digest string) v1.Descriptor {
	t.Helper()
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 100, Digest: h}
}
