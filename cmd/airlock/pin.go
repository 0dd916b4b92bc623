package main

import (
	"bufio"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/pin"
	"github.com/airlock-dev/airlock/internal/server"
)

func newPin() *cobra.Command {
	var srv, output, lock string
	var write, check, diff, offline, verbose bool
	cmd := &cobra.Command{
		Use:   "pin [PATH…] [--write | --check | --diff] [--lock airlock.lock] [-o json|sarif]",
		Short: "Pin every image reference to an approved digest of the private registry; --check fails CI on anything else",
		Long: `Pin finds image references in Dockerfiles/Containerfiles, Kubernetes manifests (any kind,
CRDs included), Helm values, Kustomize images, docker-compose, GitHub Actions, GitLab CI and
Tekton, asks the server for the approved digest of each (one batched request), and rewrites
them to REGISTRY/repo:tag@sha256:… — only the reference's bytes change; comments, quoting,
anchors, indentation and line endings stay. References with nothing approved are reported,
never guessed; templated values are left alone with a note. It also reports remote scripts
run unverified (curl … | sh) and ADD of URLs without --checksum.

Without a mode flag pin previews: it prints the diff --write would apply and every finding,
and writes nothing (exit 0). --diff prints only the diff (the summary goes to stderr).
--write rewrites the files and exits 1 if something could not be pinned. --check writes
nothing and exits 1 if any reference is not a private, approved, digest-pinned image or a
remote script is run unverified. A line (or the comment line above it) containing
"airlock:ignore" is skipped.

--lock FILE records every resolution (reference, digest, state, when, which server) on
--write; when the server cannot be reached (or with --offline) the lock file alone is used.

Exit codes: 0 passed, 1 not pinned / not approved, 2 a file could not be read or parsed
(it is left unchanged; the others are still processed) or bad usage, 3 server unreachable.`,
		Example: `  airlock pin                                  # preview: diff and findings, nothing written
  airlock pin --write deploy/ Dockerfile       # rewrite in place
  airlock pin --check -o sarif > pin.sarif     # CI: exit 1 on anything not pinned to an approved digest
  airlock pin --diff | git apply --check
  airlock pin --write --lock airlock.lock      # record what was pinned and why
  airlock pin --check --lock airlock.lock --offline`,
		RunE: func(cmd *cobra.Command, args []string) error {
			mode := pin.ModePreview
			n := 0
			for _, m := range []struct {
				on   bool
				mode pin.Mode
			}{{write, pin.ModeWrite}, {check, pin.ModeCheck}, {diff, pin.ModeDiff}} {
				if m.on {
					mode = m.mode
					n++
				}
			}
			if n > 1 {
				return usageErr("--write, --check and --diff exclude each other")
			}
			if output != "" && output != "json" && output != "sarif" {
				return usageErr("-o must be json or sarif, not %q", output)
			}
			if offline && lock == "" {
				return usageErr("--offline needs --lock FILE")
			}
			// a short-lived process reading many small files: trade memory for less GC
			debug.SetGCPercent(400)
			opts := pin.Options{Paths: args, Mode: mode, LockPath: lock, Offline: offline}
			if !offline {
				c := client(srv)
				opts.Resolver, opts.Server = c, c.BaseURL
			}
			rep, err := pin.Run(cmd.Context(), opts)
			if err != nil {
				var se *server.StatusError
				switch {
				case errors.Is(err, pin.ErrUnreachable):
					return &exitError{code: exitInternal, err: err}
				case errors.As(err, &se):
					return err
				default:
					return &exitError{code: exitUsage, err: err}
				}
			}
			// one finding per line, thousands of lines: buffer them
			out, errw := bufio.NewWriter(cmd.OutOrStdout()), bufio.NewWriter(cmd.ErrOrStderr())
			defer errw.Flush()
			defer out.Flush()
			switch {
			case output == "json":
				err = rep.WriteJSON(out)
			case output == "sarif":
				err = rep.WriteSARIF(out, server.Version)
			case mode == pin.ModeDiff:
				err = rep.WriteDiff(out)
				rep.WriteText(errw, verbose)
			case mode == pin.ModePreview:
				err = rep.WriteDiff(out)
				rep.WriteText(out, verbose)
			default:
				rep.WriteText(out, verbose)
			}
			if err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
			if err := errw.Flush(); err != nil {
				return err
			}
			if len(rep.Errors) > 0 {
				return &exitError{code: exitUsage, err: fmt.Errorf("%s could not be read or parsed; left unchanged", plural(len(rep.Errors), "file"))}
			}
			if rep.Failed() && (mode == pin.ModeCheck || mode == pin.ModeWrite) {
				bad := rep.Count(pin.StatusUnpinned) + rep.Count(pin.StatusManual) + rep.Count(pin.StatusUnapproved)
				return &exitError{code: exitDenied, err: fmt.Errorf("%s not pinned to approved digests, %s run unverified",
					plural(bad, "image reference"), plural(rep.Count(pin.StatusScript), "remote script"))}
			}
			return nil
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().BoolVar(&write, "write", false, "rewrite the files in place")
	cmd.Flags().BoolVar(&check, "check", false, "write nothing; exit 1 if any reference is not a private, approved, digest-pinned image")
	cmd.Flags().BoolVar(&diff, "diff", false, "print a unified diff of what --write would change, write nothing")
	cmd.Flags().StringVar(&lock, "lock", "", "lock file: updated by --write, used alone when the server is unreachable")
	cmd.Flags().BoolVar(&offline, "offline", false, "never contact the server: resolve from the --lock file alone")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list references that are already pinned")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or sarif (default: text for people)")
	return cmd
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
