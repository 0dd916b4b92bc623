package admission

import (
	"strings"
	"testing"
)

// FuzzDecodeReview feeds arbitrary bodies through the request parser and the
// pod-spec extraction of every kind: no panic, and every image found has the
// JSON pointer of a container list of that kind.
func FuzzDecodeReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"registry.local/a@sha256:` + strings.Repeat("0", 64) + `"}],"initContainers":[{"name":"i","image":"x"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"batch","version":"v1","kind":"CronJob"},"operation":"UPDATE","object":{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"ephemeralContainers":[{"name":"e","image":"busybox"}]}}}}}},"oldObject":{}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"spec":{"template":null}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"image":"a","image":"b"}]}}}}`))
	f.Add([]byte(`{"request":{"object":[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"ReplicationController"},"operation":"CREATE","object":{"spec":{"template":{"spec":{"containers":[{"Image":"x"}]}}}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rv, err := DecodeReview(body)
		if err != nil {
			return
		}
		for group, kind := range map[string]string{rv.Request.Kind.Group: rv.Request.Kind.Kind} {
			imgs, ok, err := ContainerImages(group, kind, rv.Request.Object.Raw)
			if err != nil || !ok {
				continue
			}
			prefix := kinds[gk{group, kind}].prefix
			for _, c := range imgs {
				if !strings.HasPrefix(c.Path, prefix+"/"+string(c.Field)+"/") || !strings.HasSuffix(c.Path, "/image") {
					t.Fatalf("image %q at unexpected path %s", c.Image, c.Path)
				}
			}
		}
		// Every kind must cope with any object.
		for k := range kinds {
			_, _, _ = ContainerImages(k.group, k.kind, rv.Request.Object.Raw)
		}
	})
}

// FuzzParseImage: no panic; an accepted reference keeps a host that is
// exactly a prefix of the normalised name, and a digest only of sha256.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{
		"registry.local/team/app:1@sha256:" + strings.Repeat("a", 64),
		"registry.local.evil.com/a", "user@registry.local/a", "registry.local@evil/a", "nginx",
		"localhost:5000/a/b/c:tag", "[::1]:5000/a", "a@sha512:" + strings.Repeat("b", 128), "REGISTRY.LOCAL/a",
	} {
		f.Add(s)
	}
	hs, err := newHostSet([]string{"registry.local", "localhost:5000"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		img, err := ParseImage(s)
		if err != nil {
			return
		}
		if img.Host == "" || img.Repository == "" {
			t.Fatalf("%q parsed without host or repository: %+v", s, img)
		}
		if img.Digest != "" && !strings.HasPrefix(img.Digest, "sha256:") {
			t.Fatalf("%q: digest %s", s, img.Digest)
		}
		if hs.has(img.Host) {
			h := strings.ToLower(img.Host)
			if h != "registry.local" && h != "localhost:5000" {
				t.Fatalf("%q: host %q matched", s, img.Host)
			}
			// The written reference must start with that host: no other
			// reading of it names another registry.
			if !strings.HasPrefix(strings.ToLower(s), h+"/") {
				t.Fatalf("%q matched host %s without starting with it", s, h)
			}
		}
	})
}
