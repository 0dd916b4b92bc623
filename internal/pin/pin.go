// Package pin finds every container image reference in a repository's files
// (Dockerfiles, Kubernetes manifests, Helm values, Kustomize, compose, CI
// workflows) and rewrites each to the approved digest of its private copy,
// editing only the bytes of the reference; check mode lists what is not.
//
// Every file format is a Finder, registered in one list (Finders). A Finder
// reports where references are; it never edits: the engine (Run) resolves all
// references in one batch and applies byte-offset edits, so comments, quoting,
// anchors, indentation and line endings stay exactly as they were.
package pin

import "strconv"

// Kind says what a Ref is and how it can be rewritten.
type Kind string

const (
	// KindImage is a whole image reference in one string: Start:End is its text.
	KindImage Kind = "image"
	// KindSplit is a reference split over fields (Helm image.repository/tag,
	// Kustomize images[].newName/newTag/digest); Split says where they are.
	KindSplit Kind = "split"
	// KindScript is a remote script executed without verification (curl | sh).
	KindScript Kind = "script"
	// KindNote is something left alone on purpose: a templated value, a
	// reference that cannot be read. Reported, never a failure.
	KindNote Kind = "note"
)

// Ref is one place in a file that names an image (or runs a remote script).
type Ref struct {
	Start, End int    // byte offsets of the text to rewrite (KindImage); Start of the construct otherwise
	Line, Col  int    // 1-based line and column (in characters) of Start
	Text       string // the reference: as written (KindImage), composed from the fields (KindSplit), the command (KindScript)
	Platform   string // platform the file pins for this reference (Dockerfile FROM --platform), if any
	Kind       Kind
	// CommentTag is the tag written in a trailing comment of a digest-only
	// reference (`repo@sha256:… # 1.27`), kept for humans.
	CommentTag string `json:",omitempty"`
	// Manual, when set, says why the reference cannot be rewritten in place
	// (composed from several variables, a multi-line scalar…); it is checked
	// and reported with the suggested replacement.
	Manual string `json:",omitempty"`
	// Via names the indirection a reference was found through (`ARG BASE`).
	Via   string `json:",omitempty"`
	Note  string `json:",omitempty"` // KindNote and KindScript: what and why
	Split *Split `json:"-"`
}

// Field is one scalar of a split reference. Present false means the key is
// absent; a value is then inserted as a new `Key: value` line at Insert.
type Field struct {
	Key        string
	Present    bool
	Start, End int    // value span (inside quotes) when present
	Value      string // current value
	Insert     int    // where a missing key's line goes (offset of a line end); -1 when it cannot be inserted
	Indent     string // indentation of the mapping's keys
	Pad        string // written before a value that fills an empty `key:`
	EOL        string // the file's line ending
}

// SplitStyle says which rules rewrite a split reference.
type SplitStyle string

const (
	// SplitHelm is a Helm values image map: registry, repository, tag, digest.
	SplitHelm SplitStyle = "helm"
	// SplitKustomize is a kustomization images entry: name, newName, newTag, digest.
	SplitKustomize SplitStyle = "kustomize"
)

// Split locates the fields of a split reference.
type Split struct {
	Style SplitStyle
	// Helm: Registry, Repository, Tag, Digest. Kustomize: Repository is
	// newName (Name is the image name it replaces), Tag is newTag.
	Registry, Repository, Name, Tag, Digest Field
}

// Finder finds image references in one file format. Match is called for
// every file and must be cheap; Find parses the content and returns every
// reference, or an error naming the line for malformed input. Finders are
// stateless and safe for concurrent use.
type Finder interface {
	Name() string
	Match(path string, content []byte) bool
	Find(content []byte) ([]Ref, error)
}

// ParseError is malformed input: the file is left unchanged.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.Msg
}

// spanned makes every Ref's span well formed: a construct that is not
// rewritten (a script, a note, a split map) is an empty span at Start.
func spanned(refs []Ref) []Ref {
	for i := range refs {
		if refs[i].End < refs[i].Start {
			refs[i].End = refs[i].Start
		}
	}
	return refs
}
