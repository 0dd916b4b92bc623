package sqlite

import (
	"context"
	"strings"
	"testing"
)

// TestGateQueriesUseIndexes guards the registry's hot path: both gate
// queries run on every pull and must never scan a table. LeaseJob runs in
// every worker's poll loop and must not read the finished job history.
func TestGateQueriesUseIndexes(t *testing.T) {
	s := openTemp(t)
	for name, tc := range map[string]struct {
		q    string
		args []any
	}{
		"ManifestServable": {manifestServableQuery, []any{"r", int64(0), "d"}},
		"BlobServable":     {blobServableQuery, []any{"r", int64(0), "d"}},
		"LeaseJob":         {leaseQuery, []any{int64(0)}},
	} {
		rows, err := s.read.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+tc.q, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		for _, step := range plan {
			if strings.HasPrefix(step, "SCAN ") && step != "SCAN CONSTANT ROW" {
				t.Errorf("%s scans a table (%q); plan:\n%s", name, step, strings.Join(plan, "\n"))
			}
		}
	}
}
