package store

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAuditHashVectors pins the chain encoding: the hashes were computed
// outside Go (python hashlib) from the documented canonical form, so an
// accidental change to the encoding breaks every existing log and this test.
func TestAuditHashVectors(t *testing.T) {
	at := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    AuditEntry
		want string
	}{
		{"first entry without detail",
			AuditEntry{Seq: 1, At: at, Action: "x"},
			"3f0057d1972cba0f5e21d415c17b8fe541601c626ac76ee274d6f3c3a98551bc"},
		{"detail compacted, HTML not escaped, time in UTC",
			AuditEntry{Seq: 2, At: at.Add(time.Nanosecond).In(time.FixedZone("CET", 3600)), Actor: "alice", Action: "state.approved",
				Subject: "sha256:ab", Detail: json.RawMessage(`{ "why": "<ok> & fine" }`), PrevHash: "prev", Hash: "ignored"},
			"47282cd27589055d2fede348366f9ab3691a9d02039575a1886d9c2fb691b9d7"},
	}
	for _, tc := range tests {
		got, err := AuditHash(tc.e)
		if err != nil || got != tc.want {
			t.Errorf("%s: AuditHash = %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}
