package coreguard

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// WriteWrapper writes a test-only pre-installed plugin executable (name it
// NN-coreguard in the runtime's plugin dir). The runtime starts a
// pre-installed plugin with no arguments, and coreguard reads the topology
// from --sysfs-root or /sys only, so the wrapper adds the generated
// topology; it also keeps the log, which the runtime would discard. The
// socket, name, index and configuration still come from the runtime.
func WriteWrapper(path, bin, sysfsRoot, logPath string) error {
	script := fmt.Sprintf("#!/bin/sh\n# e2e test device: a generated topology for a pre-installed coreguard.\n"+
		"exec %s run --sysfs-root %s --log-level debug >>%s 2>&1\n",
		strconv.Quote(bin), strconv.Quote(sysfsRoot), strconv.Quote(logPath))
	return os.WriteFile(path, []byte(script), 0o755)
}

// CountSyncs counts the Synchronize calls logged in a coreguard log.
func CountSyncs(logPath string) int {
	b, _ := os.ReadFile(logPath)
	return strings.Count(string(b), SyncedMsg)
}
