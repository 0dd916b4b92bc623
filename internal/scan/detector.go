package scan

import (
	"context"
	"io"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Detector is a plugin that looks for one kind of trouble. The scan walks
// the layers once and offers every regular file to each detector that wants
// it, then calls Image once with everything known. Detectors are listed in
// internal/scan/detect/list.go: adding one is adding a file and a line.
type Detector interface {
	Name() string
	// Want reports whether the detector reads the content of f.
	Want(f *File) bool
	// Content scans one file's bytes as they stream out of its layer (a
	// file later deleted or replaced is still seen: it is still in the image).
	Content(ctx context.Context, f *File, r io.Reader) ([]Finding, error)
	// Image runs once after every layer was walked and the inventory taken.
	Image(ctx context.Context, im *Image) ([]Finding, error)
}

// Image is what detectors see of an image after its layers were walked.
type Image struct {
	Info     ImageInfo
	Config   *v1.ConfigFile
	Tree     *Tree
	OS       map[string]string // os-release fields
	Packages []Package
	// Owned holds the paths distro packages own (dpkg, apk), symlinks resolved.
	Owned map[string]string // path → package
	Now   time.Time
}

// ConfigTexts lists the strings of the image config a rule may match, with
// where each came from: ENV entries, entrypoint, CMD, labels and history.
func (im *Image) ConfigTexts() []ConfigText {
	var out []ConfigText
	if im.Config == nil {
		return nil
	}
	c := im.Config.Config
	for _, e := range c.Env {
		out = append(out, ConfigText{"config:Env", e})
	}
	if len(c.Entrypoint) > 0 {
		out = append(out, ConfigText{"config:Entrypoint", joinArgs(c.Entrypoint)})
	}
	if len(c.Cmd) > 0 {
		out = append(out, ConfigText{"config:Cmd", joinArgs(c.Cmd)})
	}
	for k, v := range c.Labels {
		out = append(out, ConfigText{"config:Labels", k + "=" + v})
	}
	for i, h := range im.Config.History {
		if h.CreatedBy != "" {
			out = append(out, ConfigText{"config:History[" + strconv.Itoa(i) + "]", h.CreatedBy})
		}
	}
	return out
}

// ConfigText is one string of the image config and where it is.
type ConfigText struct {
	Where string
	Text  string
}

func joinArgs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}
