package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// The supervisor and the sandbox init talk over a SOCK_SEQPACKET socket
// pair: one JSON message per packet, file descriptors (the seccomp
// listener) passed with SCM_RIGHTS.

type ctrlMsg struct {
	Type   string      `json:"type"`
	Config *initConfig `json:"config,omitempty"`
	PID    int         `json:"pid,omitempty"`
	Code   int         `json:"code,omitempty"`
	Signal int         `json:"signal,omitempty"`
	ID     int         `json:"id,omitempty"`
	Argv   []string    `json:"argv,omitempty"`
	Output string      `json:"output,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// Message types.
const (
	msgConfig    = "config"     // supervisor -> init: what to run
	msgSetupDone = "setup-done" // init: the root, /proc, /dev and lo are ready
	msgSeccomp   = "seccomp"    // init: the filter's listener fd
	msgGo        = "go"         // supervisor: listeners are up, start the entrypoint
	msgStarted   = "started"    // init: the entrypoint runs as PID
	msgError     = "error"      // init: setup failed
	msgExit      = "exit"       // init: a process ended
	msgProbe     = "probe"      // supervisor: run a probe command
	msgProbeDone = "probe-done" // init: the probe command ended
)

// initConfig is the run as the init sees it.
type initConfig struct {
	Rootfs   string   `json:"rootfs"`
	Scratch  string   `json:"scratch"`
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Dir      string   `json:"dir"`
	UID      uint32   `json:"uid"`
	GID      uint32   `json:"gid"`
	Groups   []uint32 `json:"groups"`
	Limits   Limits   `json:"limits"`
	Trace    bool     `json:"trace"`
	Hostname string   `json:"hostname"`
}

type ctrlConn struct {
	fd int
	mu sync.Mutex
}

func (c *ctrlConn) send(m ctrlMsg, fds ...int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return unix.Sendmsg(c.fd, b, oob, nil, 0)
}

var errCtrlClosed = errors.New("the sandbox init closed the control channel")

func (c *ctrlConn) recv() (ctrlMsg, []int, error) {
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ctrlMsg{}, nil, err
		}
		if n == 0 && oobn == 0 {
			return ctrlMsg{}, nil, errCtrlClosed
		}
		var fds []int
		if oobn > 0 {
			scms, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err == nil {
				for _, s := range scms {
					if f, err := unix.ParseUnixRights(&s); err == nil {
						fds = append(fds, f...)
					}
				}
			}
		}
		var m ctrlMsg
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			for _, f := range fds {
				unix.Close(f)
			}
			return ctrlMsg{}, nil, fmt.Errorf("malformed control message: %w", err)
		}
		return m, fds, nil
	}
}
