// Package sandbox runs an image's entrypoint with no way out and records what
// it does: Unpack lays an image's layers into a root directory without
// letting anything land outside it, Run executes the entrypoint in fresh
// Linux namespaces under a seccomp tracer, a DNS responder and a network
// sinkhole, and returns the events, exit status and resource peaks that the
// profile piece turns into a profile document.
package sandbox

import (
	"errors"
	"fmt"
)

// UnpackLimits bound what one Unpack may write, against tar and
// decompression bombs. Zero fields take the defaults.
type UnpackLimits struct {
	// MaxBytes is the total size of all entries of all layers (default 8 GiB).
	MaxBytes int64
	// MaxEntries is the total number of tar entries of all layers (default 1,000,000).
	MaxEntries int
	// Root keeps owners and the setuid, setgid and sticky bits of the image,
	// for a sandbox that runs as real root. Otherwise files belong to the
	// caller and lose setuid/setgid. Root needs euid 0.
	Root bool
}

// Default unpack limits.
const (
	DefaultUnpackMaxBytes   int64 = 8 << 30
	DefaultUnpackMaxEntries       = 1_000_000
	maxNameLen                    = 4096
)

func (l UnpackLimits) withDefaults() UnpackLimits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultUnpackMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultUnpackMaxEntries
	}
	return l
}

// ErrUnpackLimit is returned (wrapped) when a layer exceeds UnpackLimits.
var ErrUnpackLimit = errors.New("image exceeds the unpack limits")

// ErrUnsupported is returned (wrapped) when the sandbox cannot run on this
// host at all (not Linux, not root, a kernel without the needed features).
var ErrUnsupported = errors.New("the sandbox is not available on this host")

// layerError names the layer and entry an unpack failed on.
func layerError(layer int, name string, err error) error {
	if name == "" {
		return fmt.Errorf("unpack layer %d: %w", layer, err)
	}
	return fmt.Errorf("unpack layer %d, entry %q: %w", layer, name, err)
}
