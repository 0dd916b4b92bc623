//go:build profilewip

package main

import (
	"os"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/server"
)

// localProfiler replays profiles in this host's sandbox.
func localProfiler() (harden.Profiler, error) {
	if err := profile.Available(); err != nil {
		return nil, err
	}
	return harden.SandboxProfiler(profile.LocalSandbox(), os.TempDir(), server.Version), nil
}
