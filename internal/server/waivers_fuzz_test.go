package server_test

import (
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/server"
)

// FuzzWaiverRequest: a waiver request body, decoded as the API does, is
// either refused with a reason or names exactly one valid digest or
// repository, a finding, an owner, a reason and a positive lifetime.
func FuzzWaiverRequest(f *testing.F) {
	f.Add([]byte(`{"digest":"sha256:` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `","finding":"CVE-2023-32681","package":"requests","owner":"team","reason":"no proxy","expires":"30d"}`))
	f.Add([]byte(`{"repository":"team/app","finding":"GHSA-j8r2-6x86-q33q","owner":"o","reason":"r","expires":"720h"}`))
	f.Add([]byte(`{"repository":"../../etc","finding":"x","owner":"o","reason":"r","expires":"-1d"}`))
	f.Add([]byte(`{"digest":"sha256:x","repository":"a","finding":"a b","owner":"","reason":"","expires":"99999999999d"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r server.WaiverRequest
		if json.Unmarshal(b, &r) != nil {
			return
		}
		if server.CheckWaiverRequest(r) != nil {
			return
		}
		if (r.Digest == "") == (r.Repository == "") {
			t.Fatalf("accepted %+v naming neither or both", r)
		}
		if (r.Digest != "" && !registry.ValidDigest(r.Digest)) || (r.Repository != "" && !registry.ValidRepository(r.Repository)) {
			t.Fatalf("accepted an invalid subject: %+v", r)
		}
		if r.Finding == "" || r.Owner == "" || r.Reason == "" || len(r.Reason) > 1024 || len(r.Finding) > 256 {
			t.Fatalf("accepted %+v", r)
		}
		if d, err := server.ParseLifetime(r.Expires); err != nil || d <= 0 {
			t.Fatalf("accepted lifetime %q: %v", r.Expires, err)
		}
	})
}
