package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/detect"
	"github.com/airlock-dev/airlock/internal/scan/vulndb"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/source"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func newScan() *cobra.Command {
	var output, failOn, data, platform, repo string
	var vexFiles, rulesDirs, trusted []string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "scan IMAGE [-o table|json|sarif|cyclonedx|spdx] [--fail-on SEVERITY]",
		Short: "Scan an image: SBOM, known vulnerabilities, malicious content, secrets, names and age",
		Long: `Scan reads an image and reports what is in it and what is wrong with it, with no server
needed. IMAGE is a registry reference, oci-layout:DIR[:TAG], docker-archive:FILE[:NAME] or
oci-archive:FILE[:TAG]. A multi-arch index is narrowed to --platform (default linux/amd64).

The report covers the inventory (OS and language packages, each with the file that proves it and
the layer that added it), known vulnerabilities (from the offline advisory database in --data, if
one was imported with airlock db import), malicious content (miners, reverse shells, backdoors,
credential stealers, download-and-execute, suspicious setuid and hidden executables), secrets,
typosquatted repository names and the image's age. Content rules are YAML; add your own with
--rules DIR.

Exit codes: 0 no finding at or above --fail-on (or no --fail-on), 1 findings at or above it,
2 usage or input error, 3 internal failure.`,
		Example: `  airlock scan nginx:1.27
  airlock scan docker-archive:app.tar -o json > report.json
  airlock scan oci-layout:./build/oci:latest -o cyclonedx > sbom.cdx.json
  airlock scan ghcr.io/org/app@sha256:… --fail-on high --vex app.vex.json
  airlock scan docker-archive:app.tar --repository docker.io/someone/ngnix`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("scan takes one IMAGE (a registry reference, oci-layout:DIR, docker-archive:FILE or oci-archive:FILE)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !validFormat(output) {
				return usageErr("-o must be one of %s, not %q", strings.Join(scan.Formats, ", "), output)
			}
			if failOn != "" && !scan.ValidSeverity(failOn) {
				return usageErr("--fail-on must be critical, high, medium, low or info, not %q", failOn)
			}
			src, err := source.Parse(args[0], insecure)
			if err != nil {
				return usageErr("%v", err)
			}
			var vex []*vulndb.VEXDocument
			for _, f := range vexFiles {
				b, err := os.ReadFile(f)
				if err != nil {
					return usageErr("--vex: %v", err)
				}
				doc, err := vulndb.ParseOpenVEX(b)
				if err != nil {
					return usageErr("--vex %s: %v", f, err)
				}
				vex = append(vex, doc)
			}
			ds, err := detect.All(detect.Config{RulesDirs: rulesDirs, Trusted: trusted})
			if err != nil {
				return usageErr("%v", err)
			}
			p, err := v1.ParsePlatform(platform)
			if err != nil {
				return usageErr("--platform: %v", err)
			}
			ctx := cmd.Context()
			art, err := openImage(ctx, src, args[0], p, platform)
			if err != nil {
				return err
			}
			defer art.Close()
			img := art.Image
			if repo == "" && src.Transport == source.Registry {
				repo = scan.RepositoryOf(src.Reference().Context().Name())
			}
			opts := scan.Options{Reference: args[0], Repository: repo, Detectors: ds, Version: server.Version, TempDir: os.TempDir()}
			opts.Rules, opts.RulesHash = detect.RulesInfo(ds)
			db, note, err := openAdvisories(ctx, data)
			if errors.Is(err, errNoAdvisories) {
				return usageErr("%v", err)
			}
			if err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if db != nil {
				defer db.Close()
				d, err := img.Digest()
				if err != nil {
					return &exitError{code: exitInternal, err: err}
				}
				opts.Matcher = vexMatcher{db: db, digest: d.String(), docs: vex}
			}
			stderr := cmd.ErrOrStderr()
			tty := isTerminal(stderr)
			if tty {
				opts.Progress = func(stage string) { fmt.Fprintf(stderr, "\r\x1b[Kscanning %s: %s…", args[0], stage) }
			}
			rep, err := scan.Run(ctx, img, opts)
			if tty {
				fmt.Fprint(stderr, "\r\x1b[K")
			}
			if err != nil {
				var le *scan.LayerError
				if errors.As(err, &le) {
					return usageErr("%v", err)
				}
				return &exitError{code: exitInternal, err: err}
			}
			if note != "" {
				rep.Notes = append([]string{note}, rep.Notes...)
			}
			if err := rep.Write(cmd.OutOrStdout(), output, output == "table" && isTerminal(cmd.OutOrStdout())); err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if failOn != "" {
				if n := rep.AtLeast(failOn); n > 0 {
					return &exitError{code: exitDenied, err: fmt.Errorf("%d finding(s) at or above %s", n, strings.ToLower(failOn))}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "output format: table, json, sarif, cyclonedx or spdx")
	f.StringVar(&failOn, "fail-on", "", "exit 1 if a finding has this severity or worse (critical, high, medium, low, info)")
	f.StringArrayVar(&vexFiles, "vex", nil, "OpenVEX document whose not_affected/fixed statements suppress vulnerabilities (repeatable)")
	f.StringArrayVar(&rulesDirs, "rules", nil, "directory of extra content rules (*.yaml) (repeatable)")
	f.StringArrayVar(&trusted, "trusted", nil, "repository name never reported as a look-alike (repeatable)")
	f.StringVar(&repo, "repository", "", "repository name to check for impersonation (default: IMAGE's, for a registry reference)")
	f.StringVar(&platform, "platform", "linux/amd64", "platform to scan in a multi-arch index")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registry")
	dataFlag(cmd, &data)
	return cmd
}

func validFormat(f string) bool {
	for _, x := range scan.Formats {
		if f == x {
			return true
		}
	}
	return false
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

var errNoAdvisories = errors.New("no advisory database")

// openAdvisories opens DATA/advisories.db if it exists; without one the
// scan reports everything but known vulnerabilities, and says so.
func openAdvisories(ctx context.Context, flag string) (*vulndb.DB, string, error) {
	dir := dataDir(flag)
	p := filepath.Join(dir, vulndb.FileName)
	if _, err := os.Stat(p); err != nil {
		if flag != "" {
			return nil, "", fmt.Errorf("%w at %s: import one with airlock db import --data %s PATH", errNoAdvisories, p, flag)
		}
		return nil, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	db, err := vulndb.Open(ctx, dir)
	if err != nil {
		return nil, "", err
	}
	return db, "", nil
}

// openImage opens the image that src (given as ref) names for platform p
// (as the user spelt it). An archive or layout that cannot be read, or an
// index with no image for p, is a usage error; a registry that fails is an
// internal one. The caller closes the artifact, whose Image is set.
func openImage(ctx context.Context, src source.Source, ref string, p *v1.Platform, platform string) (*source.Artifact, error) {
	art, err := src.Open(ctx, source.Options{Platform: p, TempDir: os.TempDir()})
	if err != nil {
		var ae *source.ArchiveError
		if errors.As(err, &ae) || src.Transport != source.Registry {
			return nil, usageErr("%v", err)
		}
		return nil, &exitError{code: exitInternal, err: source.UpstreamError(ref, err)}
	}
	if art.Image == nil {
		art.Close()
		return nil, usageErr("%s is an index with no image for %s", ref, platform)
	}
	return art, nil
}

// vexMatcher applies OpenVEX statements to what the advisory database matched.
type vexMatcher struct {
	db     *vulndb.DB
	digest string
	docs   []*vulndb.VEXDocument
}

func (m vexMatcher) Match(ctx context.Context, pkgs []scan.Package) ([]scan.Vulnerability, error) {
	vs, err := m.db.Match(ctx, pkgs)
	if err != nil || len(m.docs) == 0 {
		return vs, err
	}
	return vulndb.ApplyVEX(vs, m.digest, m.docs...), nil
}

func (m vexMatcher) Snapshot() string { return m.db.Snapshot() }
