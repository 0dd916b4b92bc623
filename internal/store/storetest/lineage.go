package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

// testLineage: a hardened image is linked to its original once, both ways,
// audited once; unknown digests and self-links are refused.
func testLineage(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := record(t, s, image(repoA, "lineage-original"))
	hard := record(t, s, image(repoA, "lineage-hardened"))
	other := record(t, s, image(repoA, "lineage-hardened-again"))
	l := store.Lineage{Original: orig.Digest, Derived: hard.Digest, Kind: "hardened", Repository: repoA,
		Detail: json.RawMessage(`{ "profile": "sha256:p" }`), Actor: "pipeline"}
	got, err := s.RecordLineage(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if got.Original != orig.Digest || got.Derived != hard.Digest || got.Kind != "hardened" || got.Repository != repoA ||
		string(got.Detail) != `{"profile":"sha256:p"}` || got.Actor != "pipeline" || got.CreatedAt.IsZero() {
		t.Errorf("recorded %+v", got)
	}
	again, err := s.RecordLineage(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if !again.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("recording again changed the record: %v then %v", got.CreatedAt, again.CreatedAt)
	}
	if _, err := s.RecordLineage(ctx, store.Lineage{Original: orig.Digest, Derived: other.Digest, Kind: "hardened"}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.DerivedFrom(ctx, orig.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Derived != hard.Digest || ds[1].Derived != other.Digest {
		t.Errorf("DerivedFrom = %+v", ds)
	}
	os, err := s.OriginsOf(ctx, hard.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(os) != 1 || os[0].Original != orig.Digest {
		t.Errorf("OriginsOf = %+v", os)
	}
	if ds, _ := s.DerivedFrom(ctx, hard.Digest); len(ds) != 0 {
		t.Errorf("the hardened image has derivations: %+v", ds)
	}
	entries, err := s.AuditEntries(ctx, store.AuditFilter{Subject: hard.Digest})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Action == "image.derived" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d image.derived audit entries for %s, want 1", n, hard.Digest)
	}

	for name, bad := range map[string]store.Lineage{
		"unknown original": {Original: dg("nobody"), Derived: hard.Digest, Kind: "hardened"},
		"unknown derived":  {Original: orig.Digest, Derived: dg("nobody"), Kind: "hardened"},
	} {
		if _, err := s.RecordLineage(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	for name, bad := range map[string]store.Lineage{
		"self":       {Original: orig.Digest, Derived: orig.Digest, Kind: "hardened"},
		"no kind":    {Original: orig.Digest, Derived: hard.Digest},
		"bad detail": {Original: orig.Digest, Derived: hard.Digest, Kind: "x", Detail: json.RawMessage(`{`)},
	} {
		if _, err := s.RecordLineage(ctx, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
