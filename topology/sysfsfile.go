package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/internal/hostfile"
)

// errAbsent marks an optional sysfs file that does not exist. Callers test
// it with errors.Is and fall back to a default; every other error is fatal.
var errAbsent = errors.New("absent")

// fileError is the one error shape of this package: the file and what is
// wrong with its value, so a bad sysfs tree can be fixed from the message.
func fileError(path, format string, args ...any) error {
	return fmt.Errorf("topology: %s: %s", path, fmt.Sprintf(format, args...))
}

// maxFileSize bounds what is read of one file. A sysfs attribute is a page
// or, for the CPU lists of very large machines, a few pages: a longer file
// is not sysfs (a saved tree with something else in its place).
const maxFileSize = 64 << 10

// readText returns a sysfs file's content without its trailing newline.
// A missing file gives errAbsent (wrapped), so optional files are cheap.
// Only regular files are read, at most maxFileSize of them (hostfile).
func readText(path string) (string, error) {
	b, err := hostfile.Read(path, maxFileSize)
	var notRegular *hostfile.NotRegularError
	var tooLarge *hostfile.TooLargeError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("topology: %s: %w", path, errAbsent)
	case errors.As(err, &notRegular):
		return "", fileError(path, "is not a regular file (%s): not a sysfs attribute", notRegular.Mode.Type())
	case errors.As(err, &tooLarge):
		return "", fileError(path, "is longer than %d bytes: not a sysfs attribute", maxFileSize)
	case err != nil:
		return "", fmt.Errorf("topology: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readInt reads a file holding one decimal integer (ids may be -1).
func readInt(path string) (int, error) {
	s, err := readText(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 {
		return 0, fileError(path, "%q is not an id", s)
	}
	return n, nil
}

// readList reads a file holding a Linux CPU list.
func readList(path string) (cpuset.CPUSet, error) {
	s, err := readText(path)
	if err != nil {
		return cpuset.CPUSet{}, err
	}
	set, err := cpuset.Parse(s)
	if err != nil {
		return cpuset.CPUSet{}, fileError(path, "%q is not a CPU list: %v", s, err)
	}
	return set, nil
}

// optional turns an absent file into ok=false and passes other errors on.
func optional(err error) (ok bool, _ error) {
	if errors.Is(err, errAbsent) {
		return false, nil
	}
	return err == nil, err
}
