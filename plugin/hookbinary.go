package plugin

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/coreguard/coreguard/internal/atomicfile"
)

// hookBinaryName is the copy of coreguard kept in the state dir for the
// runtime to run as the spec-check hook (admission.Checker.Hook).
const hookBinaryName = "coreguard-hook"

// hookBinary returns the path on the host of a coreguard binary the
// runtime can run as an OCI hook. A pre-installed coreguard is on the
// host: its own executable. With a state dir (the DaemonSet mounts it
// from the host at the same path), a copy of its executable there, since
// the image's own file is not on the host. Otherwise its own executable,
// which is right for coreguard run on the host (a systemd unit).
func hookBinary(stateDir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if Preinstalled() || stateDir == "" {
		return exe, nil
	}
	dst := filepath.Join(stateDir, hookBinaryName)
	if err := copyExecutable(exe, dst); err != nil {
		return "", fmt.Errorf("copying coreguard into the state dir for the runtime to run as a hook: %w", err)
	}
	return dst, nil
}

// copyExecutable replaces dst with a copy of src in one rename, so a hook
// the runtime starts meanwhile runs the old copy or the new one, whole.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, in, 0o755)
}
