//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Unpack needs Linux (openat2); elsewhere it says so.
func Unpack(ctx context.Context, img v1.Image, dir string, lim UnpackLimits) error {
	return fmt.Errorf("%w: unpacking an image safely needs Linux (openat2), this is %s", ErrUnsupported, runtime.GOOS)
}

// Run needs Linux; elsewhere it says so.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	return nil, Available()
}

// Available explains why the sandbox cannot run here.
func Available() error {
	return fmt.Errorf("%w: the sandbox needs Linux namespaces and seccomp, this is %s: run airlock profile on a Linux host", ErrUnsupported, runtime.GOOS)
}
