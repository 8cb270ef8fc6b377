package kernel

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// osrelease is where procfs shows the running kernel's release.
const osrelease = "/proc/sys/kernel/osrelease"

// Running returns the running kernel's release string (uname -r): from the
// uname system call, else from /proc/sys/kernel/osrelease.
func Running() (string, error) {
	var u unix.Utsname
	unameErr := unix.Uname(&u)
	if unameErr == nil {
		if rel := unix.ByteSliceToString(u.Release[:]); rel != "" {
			return rel, nil
		}
	}
	data, err := os.ReadFile(osrelease)
	if err != nil {
		return "", fmt.Errorf("kernel: cannot read the running kernel's release: uname: %v; %w", unameErr, err)
	}
	rel := strings.TrimSpace(string(data))
	if rel == "" {
		return "", fmt.Errorf("kernel: cannot read the running kernel's release: uname: %v; %s is empty", unameErr, osrelease)
	}
	return rel, nil
}
