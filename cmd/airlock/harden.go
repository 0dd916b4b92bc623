package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/detect"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/source"
)

func newHarden() *cobra.Command {
	var output, profilePath, configPath, to, ociLayout, platform string
	var keep, noDefaults []string
	var insecure, noScan, noReplay bool
	cmd := &cobra.Command{
		Use:   "harden IMAGE --profile P.json [--keep GLOB]… [--no-default NAME]… [--to REF | --oci-layout DIR] [-o json]",
		Short: "Make a smaller image with only what a profiled run used, and prove it still behaves the same",
		Long: `Harden builds a new image holding only the files IMAGE's profile (airlock profile -o json) saw
used, plus what they need to run: the ELF loader and shared libraries (resolved like ld.so), the
interpreters of scripts, symlink chains and the directories on the way. It also keeps a declared
keep-list (--keep, --config, the image label dev.airlock.harden.keep) and defaults you can turn
off one by one (--no-default): ca-certificates, zoneinfo, passwd, group, nsswitch, hosts, resolv,
os-release, loader-config, package-metadata (the dpkg/apk database trimmed to the kept
packages, so scanners still work), tmp.

The new image has the same config, one squashed layer, and the same digest for the same input;
its manifest names the original (org.opencontainers.image.base.digest) and the profile. Unless
--no-replay, it is run again in the sandbox with the profile's probes: it passes when it exits the
same way, listens on the same ports, answers the probes the same and misses no file the original
had. Unless --no-scan, both images are scanned and the findings that went away are listed.

IMAGE is a registry reference, oci-layout:DIR[:TAG], docker-archive:FILE[:NAME] or
oci-archive:FILE[:TAG]. A keep glob is absolute; "/dir/**" or "/dir" keeps everything below.

Exit codes: 0 hardened (and replay passed), 1 the replay failed (nothing is written),
2 usage or input error, 3 internal failure.`,
		Example: `  airlock profile app:1.0 --http-probe 8080/healthz -o json > app.profile.json
  airlock harden app:1.0 --profile app.profile.json --oci-layout ./hardened
  airlock harden docker-archive:app.tar --profile p.json --keep '/app/templates/**' --to registry.local/app:1.0-hardened
  airlock harden oci-layout:./oci --profile p.json --no-default zoneinfo -o json > report.json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("harden takes one IMAGE (a registry reference, oci-layout:DIR, docker-archive:FILE or oci-archive:FILE)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageErr("-o must be table or json, not %q", output)
			}
			if profilePath == "" {
				return usageErr("--profile is required: make one with airlock profile IMAGE -o json > P.json")
			}
			if to != "" && ociLayout != "" {
				return usageErr("--to and --oci-layout are exclusive: write the hardened image to one place")
			}
			var dest name.Reference
			if to != "" {
				var opts []name.Option
				if insecure {
					opts = append(opts, name.Insecure)
				}
				r, err := name.ParseReference(to, opts...)
				if err != nil {
					return usageErr("--to %q is not an image reference: %v", to, err)
				}
				dest = r
			}
			var rules []harden.KeepRule
			for _, g := range keep {
				if err := harden.ValidateGlob(g); err != nil {
					return usageErr("--keep: %v", err)
				}
				rules = append(rules, harden.KeepRule{Glob: g, Source: "flag"})
			}
			if configPath != "" {
				f, err := os.Open(configPath)
				if err != nil {
					return usageErr("--config: %v", err)
				}
				c, err := harden.ParseConfig(f)
				f.Close()
				if err != nil {
					return usageErr("--config %s: %v", configPath, err)
				}
				rules = append(rules, c.Rules("config")...)
				noDefaults = append(noDefaults, c.NoDefaults...)
			}
			pf, err := os.Open(profilePath)
			if err != nil {
				return usageErr("--profile: %v", err)
			}
			// One read: the document is parsed and its digest taken as it streams.
			ph := sha256.New()
			pr, err := profile.Parse(io.TeeReader(pf, ph))
			if err == nil {
				_, err = io.Copy(ph, pf) // what Parse left unread (trailing space) is part of the file's digest
			}
			pf.Close()
			if err != nil {
				return usageErr("--profile %s: %v", profilePath, err)
			}
			pd := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(ph.Sum(nil))}

			src, err := source.Parse(args[0], insecure)
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
			res, err := harden.Harden(ctx, img, &pr, harden.Options{Keep: rules, NoDefaults: noDefaults, ProfileDigest: pd.String(),
				Version: server.Version, TempDir: os.TempDir()})
			if err != nil {
				var le *harden.LayerError
				var ie *harden.InputError
				if errors.As(err, &le) || errors.As(err, &ie) {
					return usageErr("%v", err)
				}
				return &exitError{code: exitInternal, err: err}
			}
			defer res.Close()
			rep := res.Report

			if !noScan {
				ds, err := detect.All(detect.Config{})
				if err != nil {
					return &exitError{code: exitInternal, err: err}
				}
				var reps [2]*scan.Report
				for i, im := range []v1.Image{img, res.Image} {
					opts := scan.Options{Reference: args[0], Detectors: ds, Version: server.Version, TempDir: os.TempDir()}
					opts.Rules, opts.RulesHash = detect.RulesInfo(ds)
					if reps[i], err = scan.Run(ctx, im, opts); err != nil {
						return &exitError{code: exitInternal, err: fmt.Errorf("scan the %s image: %w", [2]string{"original", "hardened"}[i], err)}
					}
				}
				rep.Findings = harden.CompareFindings(reps[0], reps[1])
			}
			if !noReplay {
				run, err := localProfiler()
				if err != nil {
					return &exitError{code: exitInternal, err: fmt.Errorf("cannot replay the profile on the hardened image (%v); run with --no-replay to skip the proof", err)}
				}
				rr, err := harden.Replay(ctx, res.Image, &pr, run)
				if err != nil {
					return &exitError{code: exitInternal, err: err}
				}
				rep.Replay = rr
			}
			if err := writeHardenReport(cmd.OutOrStdout(), output, rep, dest, ociLayout); err != nil {
				return &exitError{code: exitInternal, err: err}
			}
			if rep.Replay != nil && !rep.Replay.Passed {
				return &exitError{code: exitDenied, err: fmt.Errorf("the hardened image does not behave like the original (%s); nothing was written; keep what it missed with --keep",
					strings.Join(rep.Replay.Failures, "; "))}
			}
			switch {
			case dest != nil:
				if err := remote.Write(dest, res.Image, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
					return &exitError{code: exitInternal, err: fmt.Errorf("push the hardened image to %s: %w", dest, err)}
				}
			case ociLayout != "":
				if err := writeOCILayout(ociLayout, res.Image); err != nil {
					return &exitError{code: exitInternal, err: err}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "output format: table or json (the full report, every kept file with its reasons)")
	f.StringVar(&profilePath, "profile", "", "profile of IMAGE (airlock profile IMAGE -o json)")
	f.StringArrayVar(&keep, "keep", nil, "absolute glob of paths to keep whatever the profile saw; /dir/** keeps a tree (repeatable)")
	f.StringArrayVar(&noDefaults, "no-default", nil, "default not to keep: "+strings.Join(harden.DefaultNames(), ", ")+" (repeatable)")
	f.StringVar(&configPath, "config", "", "hardening config of the repository (YAML: keep: [globs], noDefaults: [names])")
	f.StringVar(&to, "to", "", "push the hardened image to this reference")
	f.StringVar(&ociLayout, "oci-layout", "", "write the hardened image to this OCI layout directory")
	f.StringVar(&platform, "platform", "linux/amd64", "platform to harden in a multi-arch index")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP to the registries")
	f.BoolVar(&noScan, "no-scan", false, "do not scan both images for the findings removed")
	f.BoolVar(&noReplay, "no-replay", false, "do not run the hardened image again to prove it behaves the same")
	return cmd
}

// writeOCILayout adds img to the layout at dir, creating it if needed.
func writeOCILayout(dir string, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("create the OCI layout %s: %w", dir, err)
		}
	}
	if err := p.AppendImage(img); err != nil {
		return fmt.Errorf("write the hardened image to %s: %w", dir, err)
	}
	return nil
}

func writeHardenReport(w io.Writer, output string, rep *harden.Report, dest name.Reference, dir string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	pct := func(a, b int64) string {
		if a == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a-b)/float64(a))
	}
	fmt.Fprintf(tw, "original\t%s\t%d files\t%s\t%s compressed\n", rep.Original.Digest, rep.Original.Files, humanBytes(rep.Original.Bytes), humanBytes(rep.Original.Size))
	fmt.Fprintf(tw, "hardened\t%s\t%d files\t%s\t%s compressed\n", rep.Hardened.Digest, rep.Hardened.Files, humanBytes(rep.Hardened.Bytes), humanBytes(rep.Hardened.Size))
	fmt.Fprintf(tw, "removed\t%d files\t%s of content\t%s smaller to pull\n", rep.Removed.Files, pct(rep.Original.Bytes, rep.Hardened.Bytes), pct(rep.Original.Size, rep.Hardened.Size))
	fmt.Fprintf(tw, "packages\t%d kept\t%d removed\n", len(rep.Packages.Kept), len(rep.Packages.Removed))
	if rep.Findings != nil {
		fmt.Fprintf(tw, "findings\t%d before\t%d after\n", rep.Findings.Original, rep.Findings.Hardened)
	}
	tw.Flush()
	if len(rep.Removed.Executables) > 0 {
		fmt.Fprintf(w, "\nremoved executables (%d):\n", len(rep.Removed.Executables))
		for _, e := range rep.Removed.Executables {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if rep.Findings != nil && len(rep.Findings.Removed) > 0 {
		fmt.Fprintf(w, "\nfindings removed (%d):\n", len(rep.Findings.Removed))
		for _, f := range rep.Findings.Removed {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	switch r := rep.Replay; {
	case r == nil:
		fmt.Fprintln(w, "\nreplay: not run")
	case r.Passed:
		fmt.Fprintln(w, "\nreplay: passed (same exit, ports, probes; no new missing files)")
	default:
		fmt.Fprintln(w, "\nreplay: FAILED")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	switch {
	case rep.Replay != nil && !rep.Replay.Passed:
	case dest != nil:
		fmt.Fprintf(w, "pushing to %s\n", dest)
	case dir != "":
		fmt.Fprintf(w, "writing to the OCI layout %s\n", dir)
	}
	return nil
}

// localProfiler replays profiles in this host's sandbox.
func localProfiler() (harden.Profiler, error) {
	if err := harden.SandboxAvailable(); err != nil {
		return nil, err
	}
	return harden.SandboxProfiler(harden.LocalSandbox(), os.TempDir(), server.Version), nil
}
