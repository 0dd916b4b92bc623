// Package shareddata finds the project's shared test data (../shared/data
// beside the checkout: real OSV advisories, version vectors, miner
// indicators, image names), wherever the checkout is.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// Root returns the shared data directory: $AIRLOCK_SHARED_DATA, else the
// first shared/data beside the working directory or one of its parents,
// else /work/shared/data; "" when there is none.
func Root() string {
	if d := os.Getenv("AIRLOCK_SHARED_DATA"); d != "" {
		return d
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			cand := filepath.Join(dir, "shared", "data")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	if st, err := os.Stat("/work/shared/data"); err == nil && st.IsDir() {
		return "/work/shared/data"
	}
	return ""
}

// Lookup joins elem under Root (for package-level paths in tests; a test
// reading a missing path fails with the path in its error).
func Lookup(elem ...string) string {
	root := Root()
	if root == "" {
		root = filepath.Join("shared-data-not-found", "set-AIRLOCK_SHARED_DATA")
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// Dir is Root for a test: it fails the test when there is no shared data.
func Dir(t testing.TB) string {
	t.Helper()
	d := Root()
	if d == "" {
		t.Fatal("shared test data not found beside the checkout; set AIRLOCK_SHARED_DATA")
	}
	return d
}

// Path joins elements under Dir.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{Dir(t)}, elem...)...)
}
