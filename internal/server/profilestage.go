package server

import (
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/profile/stage"
	"github.com/airlock-dev/airlock/internal/registry"
)

// profileStep is the pipeline's profile stage: the quarantined digest runs
// in this host's sandbox with its repository's settings (config section
// profile); its profile is recorded as evidence, attached to the digest as
// a referrer and diffed against the repository's last approved digest. A
// host without a sandbox records that, and the policy sends the digest to
// a human.
func (s *Server) profileStep() pipeline.Step {
	return &stage.Step{
		Store: s.Store, Registry: s.Registry, Sandbox: profile.LocalSandbox(), Available: profile.Available,
		TempDir: filepath.Join(s.Config.Data, "tmp"), Version: Version,
		Settings: func(repo string) stage.Settings { return profileSettings(s.Config.Profile, repo, s.Log) },
	}
}

// profileSettings picks a repository's duration (first matching glob) and
// probes (every matching glob). Entries were checked when the configuration
// was loaded; one that still does not parse is logged and skipped.
func profileSettings(c config.Profile, repo string, log *slog.Logger) stage.Settings {
	set := stage.Settings{Duration: c.Duration}
	for _, e := range c.Durations {
		g, v, _ := strings.Cut(e, "=")
		if registry.MatchGlob(g, repo) {
			if d, err := time.ParseDuration(v); err == nil {
				set.Duration = d
			}
			break
		}
	}
	for _, e := range c.HTTPProbes {
		g, v, _ := strings.Cut(e, "=")
		if !registry.MatchGlob(g, repo) {
			continue
		}
		p, err := profile.ParseHTTPProbe(v)
		if err != nil {
			log.Warn("profile.httpProbes entry skipped", "entry", e, "err", err)
			continue
		}
		set.HTTPProbes = append(set.HTTPProbes, p)
	}
	for _, e := range c.ProbeCmds {
		g, v, _ := strings.Cut(e, "=")
		if !registry.MatchGlob(g, repo) {
			continue
		}
		argv, err := profile.SplitCommand(v)
		if err != nil {
			log.Warn("profile.probeCmds entry skipped", "entry", e, "err", err)
			continue
		}
		set.ProbeCmds = append(set.ProbeCmds, argv)
	}
	return set
}
