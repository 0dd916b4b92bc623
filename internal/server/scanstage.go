package server

import (
	"context"
	"os"
	"path/filepath"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/detect"
	"github.com/airlock-dev/airlock/internal/scan/stage"
	"github.com/airlock-dev/airlock/internal/scan/vulndb"
)

// scanStep is the pipeline's scan stage: SBOM, vulnerabilities from the
// advisory database in the data directory (if one was imported), malicious
// content, secrets, names and age; the SBOM and report are attached to the
// digest as referrers.
func (s *Server) scanStep() pipeline.Step {
	data := s.Config.Data
	return &stage.Step{
		Store: s.Store, Registry: s.Registry, TempDir: filepath.Join(data, "tmp"), Version: Version,
		Detectors: func() ([]scan.Detector, error) { return detect.All(detect.Config{}) },
		RulesInfo: detect.RulesInfo,
		Matcher: func(ctx context.Context) (scan.Matcher, func(), error) {
			if _, err := os.Stat(filepath.Join(data, vulndb.FileName)); err != nil {
				return nil, nil, nil
			}
			db, err := vulndb.Open(ctx, data)
			if err != nil {
				return nil, nil, err
			}
			return db, func() { db.Close() }, nil
		},
	}
}
