//go:build unix

package pin

import (
	"bytes"
	"fmt"
	"syscall"
)

// Files are read and written with bare system calls: os.Open's extra
// fcntl and epoll registration per file were a third of pin's system calls
// on a tree of a thousand small files.

// readFile returns a regular file's content. A file that fits in scratch is
// read with open, one read and close: a regular file's read returns fewer
// bytes than asked only at its end. A larger file is sized by fstat and
// read whole, up to limit (errTooLarge beyond). binary is true, and content
// nil, when the file's first 8,000 bytes hold a NUL.
func readFile(path string, scratch []byte, limit int) (content []byte, binary bool, err error) {
	fd, err := openFile(path, syscall.O_RDONLY)
	if err != nil {
		return nil, false, err
	}
	defer syscall.Close(fd)
	n, err := readSome(fd, scratch)
	if err != nil {
		return nil, false, err
	}
	if bytes.IndexByte(scratch[:min(n, 8000)], 0) >= 0 {
		return nil, true, nil
	}
	if n < len(scratch) {
		return bytes.Clone(scratch[:n]), false, nil
	}
	var st syscall.Stat_t
	if err := fstat(fd, &st); err != nil {
		return nil, false, err
	}
	if st.Size > int64(limit) {
		return nil, false, &tooLargeError{size: st.Size, limit: limit}
	}
	buf := make([]byte, n, max(int(st.Size), n)+1)
	copy(buf, scratch[:n])
	for {
		if len(buf) > limit {
			return nil, false, &tooLargeError{size: int64(len(buf)), limit: limit}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		m, err := readSome(fd, buf[len(buf):cap(buf)])
		if err != nil {
			return nil, false, err
		}
		if m == 0 {
			return buf, false, nil
		}
		buf = buf[:len(buf)+m]
	}
}

// rewriteFile replaces a file's content in place, as gofmt -w does: the
// file keeps its inode, mode, owner and links. It is not truncated first
// (ext4 flushes a file truncated to zero when it is closed, which cost more
// than the rest of a run), and it is not touched if its size is no longer
// the size pin read. If writing fails part way, the old content is put back.
func rewriteFile(path string, old, data []byte) error {
	fd, err := openFile(path, syscall.O_WRONLY)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := fstat(fd, &st); err != nil {
		return err
	}
	if uint32(st.Mode)&syscall.S_IFMT != syscall.S_IFREG || st.Size != int64(len(old)) {
		return fmt.Errorf("it changed while pin was reading it (%d bytes now, %d read): run pin again", st.Size, len(old))
	}
	err = writeAt(fd, data)
	if err == nil && len(data) < len(old) {
		err = ftruncate(fd, int64(len(data)))
	}
	if err != nil {
		if writeAt(fd, old) == nil {
			_ = ftruncate(fd, int64(len(old)))
		}
	}
	return err
}

// openFile opens path so that a FIFO or device put in a file's place
// cannot block the run (O_NONBLOCK) or become its controlling terminal.
func openFile(path string, mode int) (int, error) {
	for {
		fd, err := syscall.Open(path, mode|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

func readSome(fd int, b []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

func fstat(fd int, st *syscall.Stat_t) error {
	for {
		if err := syscall.Fstat(fd, st); err != syscall.EINTR {
			return err
		}
	}
}

func ftruncate(fd int, size int64) error {
	for {
		if err := syscall.Ftruncate(fd, size); err != syscall.EINTR {
			return err
		}
	}
}

// writeAt writes data from offset 0.
func writeAt(fd int, data []byte) error {
	off := 0
	for off < len(data) {
		n, err := syscall.Pwrite(fd, data[off:], int64(off))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return syscall.EIO
		}
		off += n
	}
	return nil
}
