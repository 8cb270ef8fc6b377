package sysfsgen

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real machines' sysfs trees live as tarballs beside the project (in
// ../shared/fixtures/sysfs); tests read them from there.
const (
	// FixturesEnv names their folder, overriding the default.
	FixturesEnv = "COREGUARD_SYSFS_FIXTURES"
	// RequireFixturesEnv=1 turns a missing folder into a failure instead
	// of a skip: CI sets it so the corpus tests cannot silently not run.
	RequireFixturesEnv = "COREGUARD_REQUIRE_FIXTURES"
)

// Fixtures returns the fixture folder and the machine names in it (each
// NAME.tar.gz). It skips the test, saying why, when there are none — or
// fails it when RequireFixturesEnv is 1.
func Fixtures(tb testing.TB) (string, []string) {
	tb.Helper()
	dir := fixtureDir()
	tarballs, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	if len(tarballs) == 0 {
		msg := fmt.Sprintf("no real-machine sysfs tarballs in %s (set %s to their folder)", dir, FixturesEnv)
		if os.Getenv(RequireFixturesEnv) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	var names []string
	for _, t := range tarballs {
		names = append(names, strings.TrimSuffix(filepath.Base(t), ".tar.gz"))
	}
	return dir, names
}

// ExtractFixture unpacks one machine's tarball into a temporary folder
// (removed after the test) and returns its sysfs root.
func ExtractFixture(tb testing.TB, name string) string {
	tb.Helper()
	root := TempDir(tb)
	if err := extract(filepath.Join(fixtureDir(), name+".tar.gz"), root); err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(root, name, "sys")
}

// fixtureDir is FixturesEnv, or shared/fixtures/sysfs beside the module.
func fixtureDir() string {
	if dir := os.Getenv(FixturesEnv); dir != "" {
		return dir
	}
	wd, _ := os.Getwd()
	for dir := wd; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared", "fixtures", "sysfs")
		}
	}
	return filepath.Join("..", "shared", "fixtures", "sysfs")
}

// extract unpacks a .tar.gz under dir: folders, files and symlinks (sysfs
// links cpus and nodes). Entries that would land outside dir are refused.
func extract(tarball, dir string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", tarball, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tarball, err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("%s: entry %q leaves the folder", tarball, h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			err = writeEntry(path, tr)
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				err = os.Symlink(h.Linkname, path)
			}
		}
		if err != nil {
			return err
		}
	}
}

func writeEntry(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
