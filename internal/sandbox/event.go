package sandbox

import "time"

// Event is one thing a process in the sandbox did, as the tracer or the
// network sinkhole saw it. Events of one run are ordered by Time. The
// profile package turns a run's events into a Profile document; this type is
// the contract between the two, so fields are only ever added.
type Event struct {
	Time time.Duration `json:"t"`    // since the sandbox started
	Kind EventKind     `json:"kind"` // what happened
	PID  int           `json:"pid,omitempty"`
	PPID int           `json:"ppid,omitempty"`

	// exec, open, create, write, unlink, chmod, rename, mkdir: Path is
	// absolute inside the sandbox root (never a host path); Target is the
	// new name of a rename or the target of a symlink.
	Path   string   `json:"path,omitempty"`
	Target string   `json:"target,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Flags  int      `json:"flags,omitempty"` // open(2) flags
	Mode   uint32   `json:"mode,omitempty"`  // chmod/create mode
	// Missing is true when the path did not exist inside the sandbox root
	// at the time of the call (an open that will fail with ENOENT).
	Missing bool `json:"missing,omitempty"`

	// connect, bind, listen, accept (sinkhole), dns
	Proto string `json:"proto,omitempty"` // tcp, udp, tcp6, udp6, unix
	Addr  string `json:"addr,omitempty"`  // IP literal (or unix socket path)
	Port  int    `json:"port,omitempty"`
	Name  string `json:"name,omitempty"` // DNS name queried, or the name a sinkhole address was handed out for
	QType string `json:"qtype,omitempty"`
	// Data holds the first bytes a client sent to the sinkhole (at most
	// FirstBytesMax), for classification (Stratum, HTTP, TLS SNI, SSH).
	Data []byte `json:"data,omitempty"`

	// exit
	ExitCode int `json:"exitCode,omitempty"`
	Signal   int `json:"signal,omitempty"`

	// Comm is the short command name (from /proc/PID/comm) when known.
	Comm string `json:"comm,omitempty"`
}

// EventKind names the kinds of events.
type EventKind string

// Event kinds.
const (
	EventExec     EventKind = "exec"
	EventOpen     EventKind = "open"   // opened for reading
	EventCreate   EventKind = "create" // O_CREAT of a file that did not exist
	EventWrite    EventKind = "write"  // opened for writing (O_WRONLY/O_RDWR/O_TRUNC/O_APPEND)
	EventUnlink   EventKind = "unlink"
	EventChmod    EventKind = "chmod"
	EventRename   EventKind = "rename"
	EventMkdir    EventKind = "mkdir"
	EventSymlink  EventKind = "symlink"
	EventConnect  EventKind = "connect"
	EventBind     EventKind = "bind"
	EventListen   EventKind = "listen"
	EventDNS      EventKind = "dns"      // a query answered by the sandbox's DNS responder
	EventSinkhole EventKind = "sinkhole" // a connection accepted by the sinkhole, with its first bytes in Data
	EventExit     EventKind = "exit"
	// EventDenied records a syscall the sandbox refused (mount, ptrace, …)
	// in Name, with the errno in Target.
	EventDenied EventKind = "denied"
)

// FirstBytesMax is how many bytes of a sinkholed connection are kept.
const FirstBytesMax = 512
