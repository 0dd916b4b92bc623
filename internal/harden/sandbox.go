package harden

import (
	"github.com/airlock-dev/airlock/internal/profile"
)

// LocalSandbox is this host's sandbox for replays: the same one the
// profile stage runs (profile.LocalSandbox), so a replay sees the image
// exactly as its profile did.
func LocalSandbox() profile.Sandbox { return profile.LocalSandbox() }

// SandboxAvailable reports why this host cannot replay, or nil.
func SandboxAvailable() error { return profile.Available() }
