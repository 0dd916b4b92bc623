//go:build !profilewip

package main

import (
	"errors"

	"github.com/airlock-dev/airlock/internal/harden"
)

// localProfiler: this build has no sandbox runner yet (internal/sandbox's
// Run is built with the profilewip tag until it lands), so a replay cannot
// run and the caller says so.
func localProfiler() (harden.Profiler, error) {
	return nil, errors.New("this build of airlock has no sandbox to run images in")
}
