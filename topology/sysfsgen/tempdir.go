package sysfsgen

import (
	"os"
	"testing"
)

// fastTempRoot is where trees are written: a memory-backed /dev/shm when
// there is one, since a 384-CPU tree is about 9000 files and creating them
// on a disk-backed temp dir takes seconds; otherwise the usual temp dir.
func fastTempRoot() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "probe-"); err == nil {
			os.Remove(dir)
			return "/dev/shm"
		}
	}
	return ""
}

// TempDir is testing.TB.TempDir on a memory-backed file system when the
// machine has one: use it for sysfs trees with many files. It is removed
// when the test ends.
func TempDir(tb testing.TB) string {
	tb.Helper()
	root := fastTempRoot()
	if root == "" {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp(root, "sysfsgen-")
	if err != nil {
		tb.Fatalf("sysfsgen: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
