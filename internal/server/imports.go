package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/importer"
	"github.com/airlock-dev/airlock/internal/store"
)

// ImportRequest is the JSON body of POST /api/v1/imports for registry sources.
type ImportRequest struct {
	Source   string `json:"source"`
	As       string `json:"as,omitempty"`
	Platform string `json:"platform,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// ImportEvent is one line of the NDJSON stream POST /api/v1/imports answers.
type ImportEvent struct {
	Type     string                  `json:"type"` // job, progress, result, error
	Job      *store.Job              `json:"job,omitempty"`
	Blobs    []importer.BlobProgress `json:"blobs,omitempty"`
	Result   *importer.Result        `json:"result,omitempty"`
	Error    string                  `json:"error,omitempty"`
	Finished bool                    `json:"finished,omitempty"`
}

func (s *Server) importsAPI(mux *http.ServeMux) {
	pusher := func(c identity.Caller) bool { return c.CanPush() }
	mux.HandleFunc("POST /api/v1/imports", s.authedRaw(pusher, s.postImport))
	mux.HandleFunc("GET /api/v1/jobs", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		q := r.URL.Query()
		f := store.JobFilter{Digest: q.Get("digest"), State: q.Get("state")}
		var ok bool
		if f.Limit, ok = queryLimit(w, q, 100, 0); !ok {
			return
		}
		jobs, err := s.Store.Jobs(r.Context(), f)
		if err != nil {
			s.storeError(w, err)
			return
		}
		if jobs == nil {
			jobs = []store.Job{}
		}
		writeJSON(w, http.StatusOK, jobs)
	}))
	mux.HandleFunc("GET /api/v1/jobs/{id}", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "job id must be an integer")
			return
		}
		j, err := s.Store.Job(r.Context(), id)
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	}))
}

// postImport enqueues an import (JSON for registry sources, a tar body for
// archives and layouts) and, unless wait=false, streams its progress until
// the import stage has finished.
func (s *Server) postImport(w http.ResponseWriter, r *http.Request, c identity.Caller) {
	ctx := r.Context()
	q := r.URL.Query()
	req := importer.Request{Actor: c.Name}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	switch strings.TrimSpace(ct) {
	case "application/json", "":
		var body ImportRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "request body: "+err.Error())
			return
		}
		req.Source, req.As, req.Platform, req.Insecure = body.Source, body.As, body.Platform, body.Insecure
		req.Username, req.Password = body.Username, body.Password
	case "application/x-tar":
		req.Source, req.As, req.Platform = q.Get("source"), q.Get("as"), q.Get("platform")
		path, err := s.saveUpload(r)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
			return
		}
		req.Upload = path
	default:
		writeJSONError(w, http.StatusUnsupportedMediaType, "BAD_REQUEST", "send application/json for a registry source or application/x-tar for an archive")
		return
	}
	job, err := s.Importer.Enqueue(ctx, req, "")
	if err != nil {
		if req.Upload != "" {
			_ = os.Remove(req.Upload)
		}
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
		return
	}
	s.Runner.Notify()
	if q.Get("wait") == "false" {
		writeJSON(w, http.StatusAccepted, ImportEvent{Type: "job", Job: &job})
		return
	}
	s.streamImport(w, r, job)
}

// streamImport writes NDJSON events until the job's import stage is no longer pending.
func (s *Server) streamImport(w http.ResponseWriter, r *http.Request, job store.Job) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func(e ImportEvent) {
		_ = enc.Encode(e)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	flush(ImportEvent{Type: "job", Job: &job})
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		changed := s.Runner.Changed()
		select {
		case <-r.Context().Done():
			return // the client left; the job goes on
		case <-changed:
		case <-t.C:
		}
		j, err := s.Store.Job(r.Context(), job.ID)
		if err != nil {
			flush(ImportEvent{Type: "error", Error: err.Error(), Finished: true})
			return
		}
		st := stageOf(j, "import")
		if st == nil {
			flush(ImportEvent{Type: "error", Error: "job has no import stage", Finished: true})
			return
		}
		switch {
		case st.Status == store.StageDone:
			var res importer.Result
			_ = json.Unmarshal(st.Evidence, &res)
			s.Importer.Forget(j.ID)
			flush(ImportEvent{Type: "result", Job: &j, Result: &res, Finished: true})
			return
		case st.Status == store.StageFailed || j.State == store.JobFailed:
			s.Importer.Forget(j.ID)
			flush(ImportEvent{Type: "error", Job: &j, Error: st.Error, Finished: true})
			return
		case st.Attempts > 0 && st.Error != "":
			flush(ImportEvent{Type: "progress", Job: &j, Error: "retrying: " + st.Error})
		default:
			if b := s.Importer.ProgressOf(j.ID); len(b) > 0 {
				flush(ImportEvent{Type: "progress", Blobs: b})
			}
		}
	}
}

func stageOf(j store.Job, name string) *store.StageRun {
	for i := range j.Stages {
		if j.Stages[i].Name == name {
			return &j.Stages[i]
		}
	}
	return nil
}

// saveUpload stores an uploaded archive in DATA/uploads, within the size limit.
func (s *Server) saveUpload(r *http.Request) (string, error) {
	dir := filepath.Join(s.Config.Data, "uploads")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "import-*.tar")
	if err != nil {
		return "", err
	}
	max := s.Config.Import.MaxArchive
	n, err := io.Copy(f, io.LimitReader(r.Body, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > max {
		err = fmt.Errorf("archive is larger than the limit of %d bytes (import.maxArchive)", max)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("upload: %w", err)
	}
	return f.Name(), nil
}

// pullThrough is the registry's OnMissing hook: a pull of
// <upstream-host>/<path>:<tag> that the registry lacks queues an import and
// is refused; the unvetted bytes are never served.
func (s *Server) pullThrough(ctx context.Context, repo, ref string, c identity.Caller) string {
	cfg := s.Config.Import
	if !cfg.PullThrough {
		return ""
	}
	host, path, ok := strings.Cut(repo, "/")
	if !ok {
		return ""
	}
	host = strings.Replace(host, "_", ":", 1)
	allowed, insecure := false, false
	for _, h := range cfg.PullThroughRegistries {
		allowed = allowed || h == host
	}
	for _, h := range cfg.InsecureRegistries {
		if h == host {
			allowed, insecure = true, true
		}
	}
	if !allowed {
		return ""
	}
	src := host + "/" + path
	if strings.Contains(ref, ":") {
		src += "@" + ref
	} else {
		src += ":" + ref
	}
	req := importer.Request{Source: src, As: repo, Insecure: insecure, Actor: "pull-through:" + c.Name}
	if !strings.Contains(ref, ":") {
		req.As = repo + ":" + ref
	}
	job, err := s.Importer.Enqueue(context.WithoutCancel(ctx), req, "pull-through:"+src)
	if err != nil {
		s.Log.Warn("pull-through", "source", src, "err", err)
		return fmt.Sprintf("%s is not vetted and cannot be imported: %v", src, err)
	}
	s.Runner.Notify()
	s.Log.Info("pull-through import queued", "source", src, "job", job.ID, "by", c.Name)
	return fmt.Sprintf("%s is not vetted yet: import queued as job %d; it is served once vetted and approved (airlock jobs show %d)", src, job.ID, job.ID)
}
