package detect

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/airlock-dev/airlock/internal/scan"
)

// ageDetector reports old images: the creation date from the config (or
// its newest history entry when the config's is missing or zeroed by a
// reproducible build), and whether the OS release is past its end of life.
type ageDetector struct{ now time.Time }

func newAge(cfg Config) (scan.Detector, error) { return &ageDetector{now: cfg.Now}, nil }

func (d *ageDetector) Name() string         { return "age" }
func (d *ageDetector) Want(*scan.File) bool { return false }
func (d *ageDetector) Content(context.Context, *scan.File, io.Reader) ([]scan.Finding, error) {
	return nil, nil
}

// Created is when the image was built, as its config says; zero if unknown.
func Created(im *scan.Image) time.Time {
	if im.Config == nil {
		return time.Time{}
	}
	c := im.Config.Created.Time
	if c.Year() > 1980 {
		return c.UTC()
	}
	var newest time.Time
	for _, h := range im.Config.History {
		if h.Created.Time.After(newest) && h.Created.Time.Year() > 1980 {
			newest = h.Created.Time
		}
	}
	return newest.UTC()
}

func (d *ageDetector) Image(_ context.Context, im *scan.Image) ([]scan.Finding, error) {
	now := im.Now
	if now.IsZero() {
		now = d.now
	}
	var out []scan.Finding
	created := Created(im)
	if !created.IsZero() {
		days := int(now.Sub(created).Hours() / 24)
		sev := ""
		switch {
		case days >= 730:
			sev = "high"
		case days >= 365:
			sev = "medium"
		case days >= 180:
			sev = "low"
		}
		if sev != "" {
			out = append(out, scan.Finding{Type: scan.TypeAge, Detector: "age", Severity: sev, ID: "AIRLOCK-AGE-CREATED",
				Title: fmt.Sprintf("Image built %d days ago", days), Location: scan.Location{Path: "config:Created"},
				Evidence: "created " + created.Format(time.RFC3339)})
		}
	}
	id, ver := im.OS["ID"], im.OS["VERSION_ID"]
	if eol, name, ok := scan.EndOfLife(id, ver); ok {
		if now.After(eol) {
			out = append(out, scan.Finding{Type: scan.TypeAge, Detector: "age", Severity: "high", ID: "AIRLOCK-AGE-OS-EOL",
				Title:    fmt.Sprintf("%s is past its end of life (%s)", name, eol.Format("2006-01-02")),
				Location: scan.Location{Path: osReleasePath(im)},
				Evidence: fmt.Sprintf("ID=%s VERSION_ID=%s; security support ended %s", id, ver, eol.Format("2006-01-02"))})
		}
	}
	return out, nil
}

func osReleasePath(im *scan.Image) string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if im.Tree != nil {
			if _, ok := im.Tree.Files[p]; ok {
				return p
			}
		}
	}
	return "/etc/os-release"
}
