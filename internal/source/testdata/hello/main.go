// Command hello is the real binary the source tests put inside the images
// they build, so an image read back carries an executable of the right
// architecture rather than placeholder bytes.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Printf("hello from %s/%s\n", runtime.GOOS, runtime.GOARCH)
}
