package importer

import (
	"sort"
	"sync"
)

// BlobProgress is how far the copy of one blob got.
type BlobProgress struct {
	Blob  string `json:"blob"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// Progress of one job's import, kept in memory for whoever watches it.
type Progress struct {
	mu    sync.Mutex
	blobs map[string]BlobProgress
}

func (p *Progress) update(blob string, done, total int64) {
	p.mu.Lock()
	p.blobs[blob] = BlobProgress{Blob: blob, Done: done, Total: total}
	p.mu.Unlock()
}

// Snapshot returns the blobs seen so far, in a stable order.
func (p *Progress) Snapshot() []BlobProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]BlobProgress, 0, len(p.blobs))
	for _, b := range p.blobs {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Blob < out[j].Blob })
	return out
}

func (im *Importer) progressFor(jobID int64) *Progress {
	p, _ := im.progress.LoadOrStore(jobID, &Progress{blobs: map[string]BlobProgress{}})
	return p.(*Progress)
}

// ProgressOf returns the import progress of a job running in this process.
func (im *Importer) ProgressOf(jobID int64) []BlobProgress {
	if p, ok := im.progress.Load(jobID); ok {
		return p.(*Progress).Snapshot()
	}
	return nil
}

// Forget drops a finished job's progress and credentials.
func (im *Importer) Forget(jobID int64) {
	im.progress.Delete(jobID)
	im.creds.Delete(jobID)
}
