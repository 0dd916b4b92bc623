//go:build !unix

package pin

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// readFile returns a file's content, up to limit bytes (errTooLarge
// beyond); binary is true, and content nil, when its first 8,000 bytes hold
// a NUL.
func readFile(path string, _ []byte, limit int) (content []byte, binary bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, false, err
	}
	if len(b) > limit {
		st, err := f.Stat()
		size := int64(len(b))
		if err == nil {
			size = st.Size()
		}
		return nil, false, &tooLargeError{size: size, limit: limit}
	}
	if bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
		return nil, true, nil
	}
	return b, false, nil
}

// rewriteFile replaces a file's content in place: the file keeps its
// identity, mode and links; it is not touched if its size is no longer the
// size pin read. If writing fails part way, the old content is put back.
func rewriteFile(path string, old, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() != int64(len(old)) {
		return fmt.Errorf("it changed while pin was reading it (%d bytes now, %d read): run pin again", st.Size(), len(old))
	}
	_, err = f.WriteAt(data, 0)
	if err == nil && len(data) < len(old) {
		err = f.Truncate(int64(len(data)))
	}
	if err != nil {
		if _, werr := f.WriteAt(old, 0); werr == nil {
			_ = f.Truncate(int64(len(old)))
		}
	}
	return err
}
