package harden

import (
	"context"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox"
)

// LocalSandbox is this host's sandbox for replays: images are unpacked
// with their owners and special bits when running as root.
func LocalSandbox() profile.Sandbox {
	root := os.Geteuid() == 0
	return profile.Sandbox{
		Unpack: func(ctx context.Context, img v1.Image, dir string) error {
			return sandbox.Unpack(ctx, img, dir, sandbox.UnpackLimits{Root: root})
		},
		Run: sandbox.Run,
	}
}

// SandboxAvailable reports why this host cannot replay, or nil.
func SandboxAvailable() error { return sandbox.Available() }
