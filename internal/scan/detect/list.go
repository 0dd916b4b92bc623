// Package detect holds the scan's detectors, one file each, all behind
// scan.Detector and registered in this one list: malicious content (rules),
// secrets, suspicious files, typosquatted names and base-image age.
package detect

import (
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/scan"
)

// Config configures the detectors.
type Config struct {
	// RulesDirs hold users' rules (*.yaml), added to the builtin ones.
	RulesDirs []string
	// Trusted repository names never reported as look-alikes (besides the
	// Docker Official Images).
	Trusted []string
	// Now is the time age is measured against (default: time.Now()).
	Now time.Time
}

// registry lists every detector, in the order they run.
var registry = []func(Config) (scan.Detector, error){
	newRules,
	newSecrets,
	newFiles,
	newNames,
	newAge,
}

// All builds every registered detector.
func All(cfg Config) ([]scan.Detector, error) {
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	out := make([]scan.Detector, 0, len(registry))
	for _, f := range registry {
		d, err := f(cfg)
		if err != nil {
			return nil, fmt.Errorf("detector: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}
