package server_test

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

func TestResolve(t *testing.T) {
	up := servertest.StartUpstream(t)
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	idx := servertest.Index(t, map[string]v1.Image{
		"linux/amd64": servertest.Image(t, p, map[string][]byte{"a": []byte("amd64")}, []string{"/a"}, nil),
		"linux/arm64": servertest.Image(t, v1.Platform{OS: "linux", Architecture: "arm64"}, map[string][]byte{"a": []byte("arm64")}, []string{"/a"}, nil),
	})
	multi := up.Push(t, "library/web:1", nil, idx)
	single := up.Push(t, "library/tool:2", servertest.Image(t, p, map[string][]byte{"t": []byte("tool")}, []string{"/t"}, nil), nil)

	in, c := startForImport(t, nil)
	for _, src := range []string{up.Host + "/library/web:1", up.Host + "/library/tool:2"} {
		if ev := importJSON(t, c, server.ImportRequest{Source: src, Insecure: true}); ev.Type != "result" {
			t.Fatalf("import %s: %+v", src, ev)
		}
	}
	in.Approve(t, multi)
	im, _ := idx.IndexManifest()
	var arm string
	for _, m := range im.Manifests {
		if m.Platform.Architecture == "arm64" {
			arm = m.Digest.String()
		}
	}
	prefix := strings.Replace(up.Host, ":", "_", 1)
	res, err := in.Client(in.AdminToken).Resolve(context.Background(), []server.ResolveItem{
		{Reference: up.Host + "/library/web:1"},
		{Reference: up.Host + "/library/web:1", Platform: "linux/arm64"},
		{Reference: in.Host + "/" + prefix + "/library/web:1"},
		{Reference: in.Host + "/" + prefix + "/library/web@" + multi},
		{Reference: up.Host + "/library/tool:2"},
		{Reference: up.Host + "/library/none:1"},
		{Reference: "Not A Ref"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := in.Host + "/" + prefix + "/library/web:1@" + multi
	check := func(i int, digest, pinned string, private bool, errPart string) {
		t.Helper()
		r := res[i]
		if r.Digest != digest || (pinned != "" && r.Pinned != pinned) || r.Private != private || !strings.Contains(r.Error, errPart) {
			t.Errorf("%d %s: %+v", i, r.Reference, r)
		}
	}
	check(0, multi, want, false, "")
	check(1, arm, in.Host+"/"+prefix+"/library/web:1@"+arm, false, "")
	check(2, multi, want, true, "")
	check(3, multi, in.Host+"/"+prefix+"/library/web@"+multi, true, "")
	check(4, "", "", false, "quarantined, not approved")
	if res[4].State != store.Quarantined || single == "" {
		t.Errorf("state of an unapproved digest: %+v", res[4])
	}
	check(5, "", "", false, "airlock import")
	check(6, "", "", false, "not an image reference")
}
