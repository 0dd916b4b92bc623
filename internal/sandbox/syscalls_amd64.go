//go:build linux

package sandbox

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_X86_64

// x32 system calls share the number space above this bit; they are refused.
const x32Bit = 0x40000000

// tracedLegacy are the pre-*at calls that only some architectures have.
var tracedLegacy = map[uint32]string{
	unix.SYS_OPEN:    "open",
	unix.SYS_CREAT:   "creat",
	unix.SYS_UNLINK:  "unlink",
	unix.SYS_CHMOD:   "chmod",
	unix.SYS_RENAME:  "rename",
	unix.SYS_MKDIR:   "mkdir",
	unix.SYS_SYMLINK: "symlink",
	unix.SYS_RMDIR:   "rmdir",
}

var deniedLegacy = map[uint32]string{
	unix.SYS_IOPL:          "iopl",
	unix.SYS_IOPERM:        "ioperm",
	unix.SYS_USELIB:        "uselib",
	unix.SYS_CREATE_MODULE: "create_module",
}
