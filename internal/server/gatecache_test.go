package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// The gate caches its answers for pulls of approved content; a revocation,
// a re-push of the tag or a deletion must still take effect at once.
func TestGateCacheNeverOutlivesAChange(t *testing.T) {
	in := servertest.Start(t, nil)
	pusher := in.Token(t, "ci", store.RolePusher)
	puller := in.Token(t, "dev", store.RolePuller)
	img := in.PushRandom(t, "cache/app:1", "ci", pusher, 512, 2)
	d, _ := img.Digest()
	in.Approve(t, d.String())
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	pull := func() error {
		got, err := remote.Image(in.Ref(t, "cache/app:1"), servertest.Auth("dev", puller))
		if err != nil {
			return err
		}
		_, err = got.RawConfigFile()
		return err
	}
	blob := func() error {
		l, err := remote.Layer(in.Ref(t, "cache/app@"+ld.String()).Context().Digest(ld.String()), servertest.Auth("dev", puller))
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err == nil {
			rc.Close()
		}
		return err
	}
	for i := 0; i < 3; i++ { // warm the cache
		if err := pull(); err != nil {
			t.Fatalf("approved pull %d: %v", i, err)
		}
		if err := blob(); err != nil {
			t.Fatalf("approved blob %d: %v", i, err)
		}
	}
	if _, err := in.Client(in.AdminToken).Decide(context.Background(), d.String(), "revoke", server.DecisionRequest{Reason: "cve"}); err != nil {
		t.Fatal(err)
	}
	if err := pull(); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("pull right after revocation: %v", err)
	}
	if err := blob(); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("blob right after revocation: %v", err)
	}
}
