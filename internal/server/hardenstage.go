package server

import (
	"context"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/harden/stage"
	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/detect"
)

// hardenStep is the pipeline's harden stage: from the job's profile it
// builds the hardened image of the quarantined digest, replays the profile
// on it in this host's sandbox and, when the replay passes, stores it
// (quarantined) in the same repository, linked to its original in the store
// and by a referrer carrying the report. Per-repository keep-lists live in
// DATA/harden/REPOSITORY.yaml.
func (s *Server) hardenStep() pipeline.Step {
	data := s.Config.Data
	tmp := filepath.Join(data, "tmp")
	return &stage.Step{
		Store: s.Store, Registry: s.Registry, Sandbox: harden.LocalSandbox(), Available: harden.SandboxAvailable,
		ConfigDir: filepath.Join(data, "harden"), TempDir: tmp, Version: Version,
		Scan: func(ctx context.Context, img v1.Image) (*scan.Report, error) {
			ds, err := detect.All(detect.Config{})
			if err != nil {
				return nil, err
			}
			o := scan.Options{Detectors: ds, TempDir: tmp, Version: Version}
			o.Rules, o.RulesHash = detect.RulesInfo(ds)
			return scan.Run(ctx, img, o)
		},
	}
}
