package profile

import (
	"context"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/sandbox"
)

// LocalSandbox is this host's sandbox (internal/sandbox): images are
// unpacked with their owners and special bits when running as root.
func LocalSandbox() Sandbox {
	root := os.Geteuid() == 0
	return Sandbox{
		Unpack: func(ctx context.Context, img v1.Image, dir string) error {
			return sandbox.Unpack(ctx, img, dir, sandbox.UnpackLimits{Root: root})
		},
		Run: sandbox.Run,
	}
}

// Available reports why the local sandbox cannot run, or nil.
func Available() error { return sandbox.Available() }
