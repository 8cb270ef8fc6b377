package sysfsgen

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Real machines' sysfs trees live as tarballs beside the project (in
// ../shared/fixtures/sysfs); tests read them from there through
// sysfstest.Fixtures and sysfstest.ExtractFixture.

// FixturesEnv names their folder, overriding the default.
const FixturesEnv = "COREGUARD_SYSFS_FIXTURES"

// FixtureNames lists the machines in a fixture folder: each NAME.tar.gz.
func FixtureNames(dir string) []string {
	tarballs, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	var names []string
	for _, t := range tarballs {
		names = append(names, strings.TrimSuffix(filepath.Base(t), ".tar.gz"))
	}
	return names
}

// UnpackFixture unpacks machine name's tarball from FixtureDir into dst
// and returns its sysfs root.
func UnpackFixture(name, dst string) (string, error) {
	if err := extract(filepath.Join(FixtureDir(), name+".tar.gz"), dst); err != nil {
		return "", err
	}
	return filepath.Join(dst, name, "sys"), nil
}

// FixtureDir is FixturesEnv, or shared/fixtures/sysfs beside the module
// (found from the working directory up).
func FixtureDir() string {
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
