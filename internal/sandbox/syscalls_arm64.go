//go:build linux

package sandbox

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_AARCH64

const x32Bit = 0 // no second ABI

var tracedLegacy = map[uint32]string{}

var deniedLegacy = map[uint32]string{}
