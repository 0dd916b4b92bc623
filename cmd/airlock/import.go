package main

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/importer"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/source"
	"github.com/airlock-dev/airlock/internal/store"
)

func newImport() *cobra.Command {
	var srv, as, platform, output, username string
	var insecure, wait, passwordStdin bool
	cmd := &cobra.Command{
		Use:   "import SOURCE [--as REPO[:TAG]] [--platform P|all] [--wait]",
		Short: "Bring an external image into quarantine with its documented source, and start vetting",
		Long: `Import copies an image into the private registry, where it stays quarantined until vetted
and approved. SOURCE is a registry reference (nginx, docker.io/library/nginx:1.27,
ghcr.io/org/app@sha256:…), oci-layout:DIR[:TAG], docker-archive:FILE[:NAME] or oci-archive:FILE[:TAG].
Registry sources are fetched by the server (with its docker credentials, or --username and
--password-stdin); files are uploaded from this machine. The whole index of a multi-arch image is
copied unless --platform narrows it.`,
		Example: `  airlock import nginx:1.27
  airlock import ghcr.io/org/app@sha256:… --as apps/app:1.0
  airlock import docker-archive:app.tar --as apps/app:1.0 --wait
  airlock import oci-layout:./build/oci:latest --as apps/web:latest --platform linux/amd64`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := client(srv)
			src, err := source.Parse(args[0], insecure)
			if err != nil {
				return usageErr("%v", err)
			}
			var password string
			if passwordStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && err != io.EOF {
					return err
				}
				password = strings.TrimSpace(line)
			}
			var body io.Reader
			var contentType string
			q := url.Values{}
			switch src.Transport {
			case source.Registry:
				b, _ := json.Marshal(server.ImportRequest{Source: args[0], As: as, Platform: platform, Insecure: insecure, Username: username, Password: password})
				body, contentType = strings.NewReader(string(b)), "application/json"
			case source.DockerArchive, source.OCIArchive:
				f, err := os.Open(src.Path)
				if err != nil {
					return usageErr("%v", err)
				}
				defer f.Close()
				body, contentType = f, "application/x-tar"
			case source.OCILayout:
				body, contentType = tarDir(src.Path), "application/x-tar"
			}
			if contentType == "application/x-tar" {
				q.Set("source", args[0])
				q.Set("as", as)
				q.Set("platform", platform)
			}
			events, err := c.Import(cmd.Context(), q, contentType, body)
			if err != nil {
				return err
			}
			defer events.Close()
			bars := newBars(cmd.ErrOrStderr())
			var final server.ImportEvent
			dec := json.NewDecoder(events)
			for {
				var e server.ImportEvent
				if err := dec.Decode(&e); err == io.EOF {
					break
				} else if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				switch e.Type {
				case "job":
					if e.Job != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "import of %s queued as job %d\n", args[0], e.Job.ID)
						final.Job = e.Job
					}
				case "progress":
					bars.draw(e.Blobs)
					if e.Error != "" {
						fmt.Fprintln(cmd.ErrOrStderr(), e.Error)
					}
				case "result", "error":
					bars.done()
					final = e
				}
				if e.Finished {
					break
				}
			}
			if final.Type == "error" {
				return &exitError{code: exitUsage, err: fmt.Errorf("import failed: %s", final.Error)}
			}
			if final.Result == nil {
				return &exitError{code: exitInternal, err: fmt.Errorf("the server ended the import without a result")}
			}
			res := final.Result
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), final); err != nil {
					return err
				}
			} else {
				printImport(cmd.OutOrStdout(), res, final.Job)
			}
			if !wait {
				return nil
			}
			return waitDecision(cmd.Context(), c, final.Job.ID, cmd.ErrOrStderr())
		},
	}
	serverFlag(cmd, &srv)
	cmd.Flags().StringVar(&as, "as", "", "private repository and tag, REPO[:TAG] (default <upstream-host>/<path>:<tag>)")
	cmd.Flags().StringVar(&platform, "platform", "", "copy only this platform of a multi-arch image, e.g. linux/amd64 (default all)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "reach the upstream registry over plain HTTP (loopback and test registries)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until vetting reaches a decision; exit 0 if approved, 1 otherwise")
	cmd.Flags().StringVar(&username, "username", "", "upstream registry user name (default: the server's docker credentials)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the upstream registry password or token from standard input")
	outputFlag(cmd, &output)
	return cmd
}

func printImport(w io.Writer, r *importer.Result, job *store.Job) {
	fmt.Fprintf(w, "Digest:      %s\n", r.Digest)
	fmt.Fprintf(w, "Repository:  %s\n", r.Repository)
	if len(r.Tags) > 0 {
		fmt.Fprintf(w, "Tags:        %s\n", strings.Join(r.Tags, ", "))
	}
	if len(r.TagsKept) > 0 {
		fmt.Fprintf(w, "Tags kept:   %s (they point to an approved digest; approved tags are immutable)\n", strings.Join(r.TagsKept, ", "))
	}
	fmt.Fprintf(w, "Copied:      %s\n", humanBytes(r.Size))
	if len(r.Platforms) > 0 {
		fmt.Fprintf(w, "Platforms:   %s\n", strings.Join(r.Platforms, ", "))
	}
	if r.Import.Platform != "" {
		fmt.Fprintf(w, "Narrowed to: %s\n", r.Import.Platform)
	}
	fmt.Fprintf(w, "Source:      %s (%s, resolved %s)\n", r.Import.Normalized, r.Import.Transport, r.Import.ResolvedAt.UTC().Format(time.RFC3339))
	if r.Import.TagMoved {
		fmt.Fprintf(w, "TAG MOVED:   %s resolved to %s before, now to %s\n", r.Import.Normalized, r.Import.PreviousDigest, r.Digest)
	}
	fmt.Fprintf(w, "State:       %s\n", r.State)
	if job != nil {
		fmt.Fprintf(w, "Job:         %d (airlock jobs show %d)\n", job.ID, job.ID)
	}
}

// waitDecision polls a job until the pipeline ends, then reports the image's state.
func waitDecision(ctx context.Context, c *server.Client, id int64, log io.Writer) error {
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return err
		}
		if j.State == store.JobDone || j.State == store.JobFailed {
			img, err := c.Image(ctx, j.Digest)
			if err != nil {
				return err
			}
			var notRun, failed []string
			for _, s := range j.Stages {
				switch s.Status {
				case store.StageNotRun:
					notRun = append(notRun, s.Name)
				case store.StageFailed:
					failed = append(failed, s.Name+": "+s.Error)
				}
			}
			if img.State == store.Approved {
				fmt.Fprintf(log, "%s approved\n", img.Digest)
				return nil
			}
			msg := fmt.Sprintf("%s is %s", img.Digest, img.State)
			if len(failed) > 0 {
				msg += "; failed: " + strings.Join(failed, "; ")
			}
			if len(notRun) > 0 {
				msg += "; stages not run: " + strings.Join(notRun, ", ")
			}
			return &exitError{code: exitDenied, err: fmt.Errorf("%s", msg)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// tarDir streams an OCI layout directory as a tar: regular files and
// directories only, never following symlinks.
func tarDir(dir string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil || rel == "." {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() && !info.IsDir() {
				return fmt.Errorf("%s: only files and directories belong in an OCI layout", p)
			}
			h, err := tar.FileInfoHeader(info, "")
			if err != nil {
				return err
			}
			h.Name = filepath.ToSlash(rel)
			if info.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if info.IsDir() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// bars draws one progress line per blob on a terminal.
type bars struct {
	w     io.Writer
	tty   bool
	lines int
}

func newBars(w io.Writer) *bars {
	b := &bars{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

func (b *bars) draw(blobs []importer.BlobProgress) {
	if !b.tty || len(blobs) == 0 {
		return
	}
	if b.lines > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA", b.lines)
	}
	for _, p := range blobs {
		const width = 30
		n := 0
		if p.Total > 0 {
			n = int(p.Done * width / p.Total)
		}
		if n > width {
			n = width
		}
		fmt.Fprintf(b.w, "\x1b[2K%s [%s%s] %s / %s\n", shortDigest(p.Blob), strings.Repeat("=", n), strings.Repeat(" ", width-n), humanBytes(p.Done), humanBytes(p.Total))
	}
	b.lines = len(blobs)
}

func (b *bars) done() { b.lines = 0 }

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
