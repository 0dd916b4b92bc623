package rules

import (
	"fmt"
	"sync"
	"testing"
)

// Rules are matched from many goroutines at once (the scan feeds detectors
// in parallel): compiling ** globs must be safe concurrently. Run with -race;
// without it, a concurrent map write crashed the server mid-scan.
func TestGlobConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				g := fmt.Sprintf("**/d%d/*.conf", (i+j)%50)
				if !Glob(g, fmt.Sprintf("etc/x/d%d/a.conf", (i+j)%50)) {
					t.Errorf("%s should match", g)
					return
				}
			}
		}(i)
	}
	wg.Wait()
}
