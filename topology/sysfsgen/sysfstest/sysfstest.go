// Package sysfstest holds sysfsgen's helpers for tests, which take a
// testing.TB. They live apart from sysfsgen so that programs using
// sysfsgen (test/demo, go run tools) do not link the testing package.
package sysfstest

import (
	"fmt"
	"os"
	"testing"

	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// RequireFixturesEnv=1 turns a missing fixture folder into a failure
// instead of a skip: CI sets it so the corpus tests cannot silently not run.
const RequireFixturesEnv = "COREGUARD_REQUIRE_FIXTURES"

// TempDir is testing.TB.TempDir on a memory-backed file system when the
// machine has one (sysfsgen.TempRoot): use it for sysfs trees with many
// files. It is removed when the test ends.
func TempDir(tb testing.TB) string {
	tb.Helper()
	root := sysfsgen.TempRoot()
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

// Fixtures returns the fixture folder (sysfsgen.FixtureDir) and the
// machine names in it. It skips the test, saying why, when there are
// none — or fails it when RequireFixturesEnv is 1.
func Fixtures(tb testing.TB) (string, []string) {
	tb.Helper()
	dir := sysfsgen.FixtureDir()
	names := sysfsgen.FixtureNames(dir)
	if len(names) == 0 {
		msg := fmt.Sprintf("no real-machine sysfs tarballs in %s (set %s to their folder)", dir, sysfsgen.FixturesEnv)
		if os.Getenv(RequireFixturesEnv) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return dir, names
}

// ExtractFixture unpacks one machine's tarball into a temporary folder
// (removed after the test) and returns its sysfs root.
func ExtractFixture(tb testing.TB, name string) string {
	tb.Helper()
	root, err := sysfsgen.UnpackFixture(name, TempDir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return root
}
