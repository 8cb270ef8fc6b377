// Package hostfile reads small files of the host (sysfs attributes,
// kubelet's checkpoints) defensively: only regular files, and only up to a
// bound, so a FIFO, a device or an endless file in their place (a saved
// tree holds anything) can neither hang nor exhaust coreguard.
package hostfile

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// NotRegularError is a path that is not a regular file.
type NotRegularError struct {
	Path string
	Mode os.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s: is not a regular file (%s)", e.Path, e.Mode.Type())
}

// TooLargeError is a file longer than the bound.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: is longer than %d bytes", e.Path, e.Limit)
}

// Read returns the content of the regular file at path (symbolic links
// followed), at most limit bytes of it. Open errors are returned as they
// are (fs.ErrNotExist tells a missing file).
func Read(path string, limit int64) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Path: path, Limit: limit}
	}
	return b, nil
}
