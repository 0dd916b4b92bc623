package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/source"
	"github.com/airlock-dev/airlock/internal/store"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func newProfile() *cobra.Command {
	var output, outFile, platform string
	var duration time.Duration
	var probeCmds, httpProbes []string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "profile IMAGE [--duration 30s] [--probe-cmd CMD]… [--http-probe PORT/PATH]… [-o table|json] [--out FILE]",
		Short: "Run an image in a sandbox with no way out and record what it does",
		Long: `Profile runs an image's entrypoint in a Linux sandbox (new namespaces, no route out, a DNS
responder and a sinkhole that accept every query and connection) and records its behaviour:
executables run, files read and written, names resolved, destinations contacted with what was
sent to them (Stratum mining, HTTP, TLS server name, SSH), ports listened on, exit and resource
peaks, and verdict notes. IMAGE is a registry reference, oci-layout:DIR[:TAG],
docker-archive:FILE[:NAME] or oci-archive:FILE[:TAG].

An image whose main process only waits can be exercised: --http-probe sends GET PATH to PORT
from inside the sandbox network, --probe-cmd runs a command inside the sandbox after start-up.

The sandbox needs Linux and root (or unprivileged user namespaces).

Exit codes: 0 profiled, 1 a critical note fired (a Stratum login, a known mining pool, a write to
ld.so.preload, cron, shadow or authorized_keys), 2 usage or input error, 3 internal failure (the
sandbox is not available here, or failed).

airlock profile diff OLD NEW compares two profile documents.`,
		Example: `  airlock profile docker-archive:app.tar
  airlock profile nginx:1.27 --duration 20s --http-probe 80/ -o json --out nginx.profile.json
  airlock profile oci-layout:./build/oci:latest --probe-cmd "wget -qO- http://127.0.0.1:8080/healthz"
  airlock profile diff app-1.0.profile.json app-1.1.profile.json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("profile takes one IMAGE (a registry reference, oci-layout:DIR, docker-archive:FILE or oci-archive:FILE)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageErr("-o must be table or json, not %q", output)
			}
			if duration <= 0 || duration > time.Hour {
				return usageErr("--duration must be more than 0 and at most 1h, not %s", duration)
			}
			opts := profile.Options{Reference: args[0], Duration: duration, Version: server.Version, TempDir: os.TempDir()}
			for _, h := range httpProbes {
				p, err := profile.ParseHTTPProbe(h)
				if err != nil {
					return usageErr("--http-probe: %v", err)
				}
				opts.HTTPProbes = append(opts.HTTPProbes, p)
			}
			for _, c := range probeCmds {
				argv, err := profile.SplitCommand(c)
				if err != nil {
					return usageErr("--probe-cmd: %v", err)
				}
				opts.ProbeCmds = append(opts.ProbeCmds, argv)
			}
			src, err := source.Parse(args[0], insecure)
			if err != nil {
				return usageErr("%v", err)
			}
			p, err := v1.ParsePlatform(platform)
			if err != nil {
				return usageErr("--platform: %v", err)
			}
			if err := profile.Available(); err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			ctx := cmd.Context()
			art, err := openImage(ctx, src, args[0], p, platform)
			if err != nil {
				return err
			}
			defer art.Close()
			stderr := cmd.ErrOrStderr()
			tty := isTerminal(stderr)
			if tty {
				fmt.Fprintf(stderr, "\r\x1b[Kprofiling %s for up to %s…", args[0], duration)
			}
			prof, err := profile.Make(ctx, art.Image, profile.LocalSandbox(), opts)
			if tty {
				fmt.Fprint(stderr, "\r\x1b[K")
			}
			switch {
			case errors.Is(err, profile.ErrNotRunnable), errors.Is(err, sandbox.ErrUnpackLimit):
				return usageErr("%v", err)
			case err != nil:
				return &exitError{code: exitInternal, err: err}
			}
			if outFile != "" {
				b, err := profile.Marshal(prof)
				if err != nil {
					return &exitError{code: exitInternal, err: err}
				}
				if err := os.WriteFile(outFile, b, 0o644); err != nil {
					return &exitError{code: exitInternal, err: fmt.Errorf("--out: %w", err)}
				}
			}
			if err := writeProfile(cmd.OutOrStdout(), prof, output); err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if c := prof.Critical(); len(c) > 0 {
				return &exitError{code: exitDenied, err: fmt.Errorf("the image showed critical behaviour in the sandbox: %s", strings.Join(c, ", "))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.StringVar(&outFile, "out", "", "also write the JSON profile to FILE")
	f.DurationVar(&duration, "duration", profile.DefaultDuration, "how long to let the image run before everything in the sandbox is killed")
	f.StringArrayVar(&probeCmds, "probe-cmd", nil, "command run inside the sandbox after start-up, split like a shell does (repeatable)")
	f.StringArrayVar(&httpProbes, "http-probe", nil, "HTTP GET sent to PORT/PATH from inside the sandbox network, e.g. 8080/healthz (repeatable)")
	f.StringVar(&platform, "platform", "linux/amd64", "platform to run in a multi-arch index")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry")
	cmd.AddCommand(newProfileDiff())
	return cmd
}

func writeProfile(w io.Writer, p profile.Profile, output string) error {
	if output == "json" {
		b, err := profile.Marshal(p)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return profile.WriteTable(w, p)
}

func newProfileDiff() *cobra.Command {
	var output, srv string
	var exitCode bool
	cmd := &cobra.Command{
		Use:   "diff OLD NEW [-o text|json] [--exit-code] [--server URL]",
		Short: "Compare two profiles: new and gone executables, destinations, names, ports, written paths and notes",
		Long: `Diff compares two profiles: what the new one does that the old one did not (+) and what it
no longer does (-). OLD and NEW are profile documents (written by airlock profile -o json or --out)
or digests (sha256:…) whose profiles the server's pipeline recorded. Destinations are named by the
DNS name they were resolved from, so two runs of the same behaviour diff clean.

Exit codes: 0 compared (1 with --exit-code when the behaviour changed), 2 a file is missing or
not a profile document.`,
		Example: `  airlock profile diff app-1.0.profile.json app-1.1.profile.json
  airlock profile diff old.json new.json -o json --exit-code
  airlock profile diff sha256:4f3c… sha256:9a1b… --server http://127.0.0.1:5000`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageErr("profile diff takes two profile documents, OLD and NEW")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageErr("-o must be text or json, not %q", output)
			}
			var ps [2]profile.Profile
			for i, arg := range args {
				var err error
				if strings.HasPrefix(arg, "sha256:") {
					ps[i], err = serverProfile(cmd.Context(), client(srv), arg)
				} else {
					ps[i], err = fileProfile(arg)
				}
				if err != nil {
					return err
				}
			}
			d := profile.Compare(ps[0], ps[1])
			var err error
			if output == "json" {
				err = d.WriteJSON(cmd.OutOrStdout())
			} else {
				err = d.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if exitCode && !d.Empty() {
				return &exitError{code: exitDenied, err: errors.New("the behaviour changed")}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().BoolVar(&exitCode, "exit-code", false, "exit 1 when the behaviour changed")
	serverFlag(cmd, &srv)
	return cmd
}

func fileProfile(name string) (profile.Profile, error) {
	f, err := os.Open(name)
	if err != nil {
		return profile.Profile{}, usageErr("%v", err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return profile.Profile{}, usageErr("%s: %v", name, err)
	}
	return p, nil
}

// serverProfile is the profile the server's pipeline recorded for digest
// (its newest job with one), read back through Parse like a file.
func serverProfile(ctx context.Context, c *server.Client, digest string) (profile.Profile, error) {
	jobs, err := c.Jobs(ctx, store.JobFilter{Digest: digest})
	if err != nil {
		return profile.Profile{}, err
	}
	for _, j := range jobs {
		for _, st := range j.Stages {
			if st.Name != "profile" || st.Status != store.StageDone {
				continue
			}
			var ev struct {
				Status  string          `json:"status"`
				Reason  string          `json:"reason"`
				Profile json.RawMessage `json:"profile"`
			}
			if err := json.Unmarshal(st.Evidence, &ev); err != nil || len(ev.Profile) == 0 || string(ev.Profile) == "null" {
				if ev.Status != "" {
					return profile.Profile{}, usageErr("%s has no profile on the server: %s %s", digest, ev.Status, ev.Reason)
				}
				continue
			}
			p, err := profile.Parse(bytes.NewReader(ev.Profile))
			if err != nil {
				return profile.Profile{}, &exitError{code: exitInternal, err: fmt.Errorf("the server's profile of %s: %w", digest, err)}
			}
			return p, nil
		}
	}
	return profile.Profile{}, usageErr("the server has no profile of %s: import it, or give a profile file", digest)
}
