// Package cgtest makes real and fixture cgroups for tests: private v1 cpu
// cgroups under the host's controller (removed after the test), a busy
// process inside one, and v2 fixture trees of plain files.
package cgtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/coreguard/coreguard/cgroups"
)

// RequireEnv=1 turns "not root / no v1 cpu controller" from a skip into a
// failure, for CI machines that must run the real-cgroup tests.
const RequireEnv = "COREGUARD_REQUIRE_CGROUP_V1"

// V1 returns the host's hierarchy when tests can write real v1 cpu
// cgroups: root, and the cpu controller on cgroup v1. Otherwise it skips
// the test, loudly, or fails it when RequireEnv is 1.
func V1(tb testing.TB) *cgroups.Hierarchy {
	tb.Helper()
	why := ""
	h, err := cgroups.Open(cgroups.DefaultRoot)
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	case err != nil:
		why = err.Error()
	case h.Version != cgroups.V1:
		why = "the cpu controller is on cgroup v2 here"
	case !exists(filepath.Join(h.CPUDir, "cpu.cfs_quota_us")):
		why = "the v1 cpu controller has no CFS bandwidth files"
	}
	if why != "" {
		msg := fmt.Sprintf("SKIPPING REAL CGROUP v1 TEST: %s (set %s=1 to make this a failure)", why, RequireEnv)
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return h
}

// Name is a fresh name with prefix, unique across concurrent runs, e.g.
// "cgtest-1f2e3d4c".
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Private creates the cgroup group (e.g. "/cgtest-1f2e3d4c") in h's cpu
// controller and removes it with everything below at the end of the test
// (deepest first; Busy processes are killed before).
func Private(tb testing.TB, h *cgroups.Hierarchy, group string) string {
	tb.Helper()
	dir := filepath.Join(h.CPUDir, group)
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := RemoveTree(dir); err != nil {
			tb.Errorf("cleaning up test cgroup: %v", err)
		}
	})
	return dir
}

// Mkdir creates a cgroup (and its parents) below a Private one.
func Mkdir(tb testing.TB, dir string) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Write writes a cgroup file, failing the test with the kernel's answer.
func Write(tb testing.TB, dir, file, value string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		tb.Fatalf("write %q to %s: %v", value, filepath.Join(dir, file), err)
	}
}

// Busy starts a shell spinning forever, moves it into the cgroup at dir,
// and kills it at the end of the test (before Private's cleanup, which
// was registered earlier). It returns the pid.
func Busy(tb testing.TB, dir string) int {
	tb.Helper()
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	Write(tb, dir, "cgroup.procs", strconv.Itoa(cmd.Process.Pid))
	return cmd.Process.Pid
}

// RemoveTree removes a cgroup directory and every cgroup below it,
// deepest first: cgroupfs removes only empty cgroups, with rmdir. Each
// rmdir is retried briefly, as a just-killed task may still be leaving.
func RemoveTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		var err error
		for try := 0; try < 50; try++ {
			if err = os.Remove(d); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// FixtureV2 makes a cgroup v2 fixture tree: a temporary directory with a
// root cgroup.controllers listing cpu, which cgroups.Open takes for a v2
// mount. Cgroups in it are plain directories made with File.
func FixtureV2(tb testing.TB) string {
	tb.Helper()
	root := tb.TempDir()
	File(tb, root, "cgroup.controllers", "cpuset cpu io memory pids\n")
	return root
}

// File writes a fixture file, creating its directory.
func File(tb testing.TB, dir, name, content string) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
