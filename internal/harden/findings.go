package harden

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/scan"
)

// findingKey names a finding independently of the layer it is in: the
// hardened image has one layer, the original several.
func findingKey(f scan.Finding) string {
	k := f.Type + " " + f.ID
	if f.Package != nil {
		k += " in " + f.Package.Name
	}
	if f.Location.Path != "" {
		k += " at " + f.Location.Path
	}
	return k
}

// CompareFindings lists the findings of the original's scan that the
// hardened image's scan no longer has.
func CompareFindings(original, hardened *scan.Report) *FindingChange {
	fc := &FindingChange{Original: len(original.Findings), Hardened: len(hardened.Findings), Removed: []string{}}
	still := map[string]bool{}
	for _, f := range hardened.Findings {
		still[findingKey(f)] = true
	}
	seen := map[string]bool{}
	for _, f := range original.Findings {
		k := findingKey(f)
		if !still[k] && !seen[k] {
			seen[k] = true
			fc.Removed = append(fc.Removed, strings.ToLower(f.Severity)+" "+k)
		}
	}
	sort.Strings(fc.Removed)
	return fc
}

// SandboxProfiler replays a profile with sb: the same time limit, HTTP
// probes and probe commands as the original run.
func SandboxProfiler(sb profile.Sandbox, tempDir, version string) Profiler {
	return func(ctx context.Context, img v1.Image, like *profile.Profile) (*profile.Profile, error) {
		o := profile.Options{TempDir: tempDir, Version: version, Reference: "hardened " + like.Image.Digest}
		if like.Run.Duration != "" {
			d, err := time.ParseDuration(like.Run.Duration)
			if err != nil {
				return nil, fmt.Errorf("the profile's run duration %q: %w", like.Run.Duration, err)
			}
			o.Duration = d
		}
		for _, s := range like.Run.HTTPProbes {
			p, err := profile.ParseHTTPProbe(s)
			if err != nil {
				return nil, err
			}
			o.HTTPProbes = append(o.HTTPProbes, p)
		}
		for _, s := range like.Run.ProbeCmds {
			argv, err := profile.SplitCommand(s)
			if err != nil {
				return nil, err
			}
			o.ProbeCmds = append(o.ProbeCmds, argv)
		}
		pr, err := profile.Make(ctx, img, sb, o)
		if err != nil {
			return nil, err
		}
		return &pr, nil
	}
}
