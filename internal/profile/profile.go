// Package profile turns a sandboxed run of an image into its reference
// behaviour: a versioned, deterministically ordered document of what ran,
// what was read and written, which names were resolved and which
// destinations were contacted; and diffs two such documents.
package profile

// SchemaVersion identifies the document format; it changes only when a
// field changes meaning (new fields may be added within a version).
const SchemaVersion = "airlock.dev/profile/v1"

// Profile is the reference behaviour of one image digest. Every list is
// sorted so that two runs of the same image produce byte-identical JSON
// after Normalize (timestamps and counts aside).
type Profile struct {
	SchemaVersion string    `json:"schemaVersion"`
	Image         Image     `json:"image"`
	Run           Run       `json:"run"`
	Executables   []Exec    `json:"executables"`
	Files         Files     `json:"files"`
	Network       Network   `json:"network"`
	Probes        []Probe   `json:"probes"`
	Exit          Exit      `json:"exit"`
	Resources     Resources `json:"resources"`
	Notes         []Note    `json:"notes"`
	Stats         Stats     `json:"stats"`
}

// Image names what was run.
type Image struct {
	Reference string `json:"reference,omitempty"`
	Digest    string `json:"digest"`
	Platform  string `json:"platform,omitempty"`
}

// Run records the parameters of the run.
type Run struct {
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
	EnvNames   []string `json:"envNames"` // names only: values may be secrets
	WorkingDir string   `json:"workingDir"`
	User       string   `json:"user"`
	Duration   string   `json:"duration"`             // the time limit, e.g. "30s"
	HTTPProbes []string `json:"httpProbes,omitempty"` // "8080/healthz"
	ProbeCmds  []string `json:"probeCmds,omitempty"`
	Mode       string   `json:"mode"`                // sandbox mode: root or userns
	Sandbox    string   `json:"sandbox"`             // airlock version that ran it
	StartedAt  string   `json:"startedAt,omitempty"` // RFC 3339; cleared by Normalize
}

// Exec is one executable that was run, with every distinct argv.
type Exec struct {
	Path    string     `json:"path"`
	Argv    [][]string `json:"argv"`
	Parents []string   `json:"parents"` // executables of the parent processes
	Count   int        `json:"count"`
}

// Files lists file activity; paths under volatile trees (/proc/PID, /tmp
// names with random parts) are collapsed into patterns (Pattern=true).
type Files struct {
	Read    []Path `json:"read"`
	Written []Path `json:"written"`
	Created []Path `json:"created"`
	Deleted []Path `json:"deleted"`
	Chmod   []Path `json:"chmod"`
	// Missing are paths that were opened or executed but did not exist —
	// a hardened image must not add to this list.
	Missing []Path `json:"missing"`
}

// Path is one path or pattern with how often it was seen.
type Path struct {
	Path    string `json:"path"`
	Pattern bool   `json:"pattern,omitempty"`
	Mode    string `json:"mode,omitempty"` // octal, for chmod and create
	Count   int    `json:"count"`
}

// Network is everything network: names resolved, connections attempted
// (what the sinkhole saw of them), ports listened on.
type Network struct {
	DNS          []DNSQuery    `json:"dns"`
	Destinations []Destination `json:"destinations"`
	Listening    []Listen      `json:"listening"`
}

// DNSQuery is one name asked of the sandbox's resolver.
type DNSQuery struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Count int    `json:"count"`
}

// Destination is one place the image tried to reach.
type Destination struct {
	Proto string `json:"proto"`          // tcp, udp
	Name  string `json:"name,omitempty"` // DNS name it was resolved from, if any
	IP    string `json:"ip"`
	Port  int    `json:"port"`
	// Protocol is the classification of the first bytes: stratum, http,
	// tls, ssh, dns, other, none (connected but sent nothing).
	Protocol   string `json:"protocol"`
	Detail     string `json:"detail,omitempty"`     // HTTP "GET host/path", TLS SNI, Stratum method, SSH banner
	FirstBytes string `json:"firstBytes,omitempty"` // printable rendering, at most 128 bytes
	Count      int    `json:"count"`
}

// Listen is a port the image listened on.
type Listen struct {
	Proto string `json:"proto"`
	Addr  string `json:"addr"`
	Port  int    `json:"port"`
}

// Probe is the outcome of one probe.
type Probe struct {
	Kind   string `json:"kind"`
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Status int    `json:"status,omitempty"`
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Exit is how the main process ended.
type Exit struct {
	Code     int  `json:"code"`
	Signal   int  `json:"signal,omitempty"`
	TimedOut bool `json:"timedOut,omitempty"` // still running at the limit: normal for servers
	OOM      bool `json:"oom,omitempty"`
}

// Resources are the run's peaks.
type Resources struct {
	CPUSeconds      float64 `json:"cpuSeconds"`
	CPUBusySeconds  float64 `json:"cpuBusySeconds"`
	PeakMemoryBytes int64   `json:"peakMemoryBytes"`
	PeakPids        int     `json:"peakPids"`
}

// Note is the sandbox's verdict on something it saw.
type Note struct {
	Code     string `json:"code"`     // stable identifier, e.g. "stratum-login", "cpu-pegged"
	Severity string `json:"severity"` // info, warning, critical
	Message  string `json:"message"`
}

// Stats count the raw events behind the document.
type Stats struct {
	Events    int `json:"events"`
	Processes int `json:"processes"`
}
