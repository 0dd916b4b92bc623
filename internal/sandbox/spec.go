package sandbox

import "time"

// Spec is one sandboxed run. Rootfs is a directory already unpacked from an
// image (see Unpack); the process runs with the image's entrypoint, cmd,
// env, working directory and user.
type Spec struct {
	Rootfs     string
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE, as in the image config
	WorkingDir string
	User       string // "uid[:gid]" or a name resolved in the rootfs's /etc/passwd

	Duration time.Duration // how long to let it run before everything is killed (default 30s)

	// Probes exercise a process that only waits.
	HTTPProbes []HTTPProbe // sent from inside the sandbox's network namespace
	ProbeCmds  [][]string  // run inside the sandbox after start-up

	Limits Limits

	// Trace turns the seccomp tracer on (the default for profiling; the
	// benchmark turns it off to measure the untraced baseline).
	Trace bool
}

// HTTPProbe is an HTTP GET sent to the sandboxed process.
type HTTPProbe struct {
	Port int
	Path string
}

// Limits bound what the sandbox may use.
type Limits struct {
	Pids        int   // default 256
	MemoryBytes int64 // default 512 MiB
	CPUPercent  int   // of one core, default 100
	DiskBytes   int64 // tmpfs for writes, default 256 MiB
	OpenFiles   int   // RLIMIT_NOFILE, default 1024
}

// Result is what a run produced.
type Result struct {
	Events      []Event       `json:"events"`
	Exit        ExitStatus    `json:"exit"`
	Resources   Resources     `json:"resources"`
	Probes      []ProbeResult `json:"probes"`
	Mode        string        `json:"mode"` // "root" or "userns"
	StartupTime time.Duration `json:"startupTime"`
	Wall        time.Duration `json:"wall"`
	// Notes are the sandbox's own observations (a limit hit, a syscall
	// refused, the time limit reached).
	Notes []string `json:"notes,omitempty"`
	// Output is the first 64 KiB of what the entrypoint's processes wrote
	// to stdout and stderr.
	Output []byte `json:"output,omitempty"`
}

// ExitStatus is how the entrypoint's process ended.
type ExitStatus struct {
	Code     int  `json:"code"`
	Signal   int  `json:"signal,omitempty"`
	TimedOut bool `json:"timedOut,omitempty"` // still running at the time limit (killed by the sandbox)
	OOM      bool `json:"oom,omitempty"`
}

// Resources are peaks and totals read from the run's cgroup.
type Resources struct {
	CPUSeconds      float64 `json:"cpuSeconds"`
	PeakMemoryBytes int64   `json:"peakMemoryBytes"`
	PeakPids        int     `json:"peakPids"`
	// CPUBusyPeriods lists stretches where CPU use stayed above 90% of the
	// limit, for notes like "CPU pegged at 100% for 25 s".
	CPUBusySeconds float64 `json:"cpuBusySeconds"`
	PidsLimitHit   bool    `json:"pidsLimitHit,omitempty"`
	MemoryLimitHit bool    `json:"memoryLimitHit,omitempty"`
}

// ProbeResult is the outcome of one probe.
type ProbeResult struct {
	Kind   string `json:"kind"`   // "http" or "cmd"
	Target string `json:"target"` // "8080/healthz" or the command line
	OK     bool   `json:"ok"`
	Status int    `json:"status,omitempty"` // HTTP status, or the command's exit code
	Output string `json:"output,omitempty"` // first bytes of the body or output
	Error  string `json:"error,omitempty"`
}
