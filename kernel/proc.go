package kernel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultProcRoot is where procfs is mounted on a node.
const DefaultProcRoot = "/proc"

// The procfs files read, relative to the procfs root.
const (
	osreleaseFile = "sys/kernel/osrelease"
	versionFile   = "version"
	signatureFile = "version_signature"
)

// maxProcFile bounds what is read of a procfs file: they are one line.
const maxProcFile = 4096

// ReadProc reads the kernel procfs shows under root: the release from
// sys/kernel/osrelease, and the upstream version from version_signature
// (Ubuntu) or version (Debian) when either names one of the release's
// branch. Both of those files may be absent. On the live /proc, a release
// that cannot be read there is taken from the uname system call.
func ReadProc(root string) (Kernel, error) {
	release, err := readRelease(root)
	if err != nil {
		return Kernel{}, err
	}
	k := Kernel{Release: release}
	rel, err := Parse(release)
	if err != nil {
		return k, nil // the verdict will say why; there is nothing to match readings against
	}
	for _, r := range []struct {
		file, name string
		read       func(string) (string, bool)
	}{
		{signatureFile, "/proc/version_signature", upstreamFromSignature},
		{versionFile, "/proc/version", upstreamFromVersion},
	} {
		text, err := readProcFile(root, r.file)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				k.Ignored = append(k.Ignored, fmt.Sprintf("%s: %v", r.name, err))
			}
			continue
		}
		version, ok := r.read(text)
		if !ok {
			continue
		}
		if why := offBranch(version, rel); why != "" {
			k.Ignored = append(k.Ignored, fmt.Sprintf("%s names upstream %s, %s", r.name, version, why))
			continue
		}
		if k.Upstream == nil {
			k.Upstream = &Upstream{Version: version, From: r.name}
		}
	}
	return k, nil
}

// readRelease reads root/sys/kernel/osrelease; on the live /proc it falls
// back to uname, as Running does.
func readRelease(root string) (string, error) {
	text, err := readProcFile(root, osreleaseFile)
	if err == nil && strings.TrimSpace(text) != "" {
		return strings.TrimSpace(text), nil
	}
	if err == nil {
		err = errors.New("empty")
	}
	if filepath.Clean(root) == DefaultProcRoot {
		if rel, uerr := Running(); uerr == nil {
			return rel, nil
		}
	}
	return "", fmt.Errorf("kernel: cannot read the kernel release from %s: %w", filepath.Join(root, osreleaseFile), err)
}

func readProcFile(root, name string) (string, error) {
	f, err := os.Open(filepath.Join(root, name))
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProcFile))
	return string(data), err
}

// offBranch says why an upstream version cannot be the one the release is
// built from ("" when it can): it must parse as a kernel.org version of
// the release's MAJOR.MINOR.
func offBranch(version string, rel Release) string {
	up, err := Parse(version)
	switch {
	case err != nil:
		return "which does not parse"
	case !up.kernelOrg():
		return "which is not a kernel.org version"
	case up.Branch() != rel.Branch():
		return fmt.Sprintf("not of the release's branch %s", rel.Branch())
	}
	return ""
}

// upstreamFromSignature reads Ubuntu's /proc/version_signature, e.g.
// "Ubuntu 5.3.0-1008.9-azure 5.3.18": its last field is the upstream
// version (https://ubuntu.com/kernel).
func upstreamFromSignature(text string) (string, bool) {
	fields := strings.Fields(text)
	if len(fields) < 3 {
		return "", false
	}
	return fields[len(fields)-1], true
}

// upstreamFromVersion reads Debian's /proc/version, whose uname -v part
// names the package version: "... #1 SMP Debian 4.19.67-2+deb10u2
// (2019-11-11)". The upstream version is the package version's part before
// its Debian revision, with "~rc" read as "-rc"
// (https://www.debian.org/doc/manuals/debian-kernel-handbook/ch-versions.html).
// Only the uname -v part is searched: the compiler's part before it names
// Debian's gcc package ("gcc version 8.3.0 (Debian 8.3.0-6)").
func upstreamFromVersion(text string) (string, bool) {
	build := unameVersion(text)
	i := strings.LastIndex(build, " Debian ")
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(build[i+len(" Debian "):])
	if len(fields) == 0 {
		return "", false
	}
	pkg := fields[0]
	dash := strings.LastIndexByte(pkg, '-')
	if dash <= 0 {
		return "", false
	}
	return strings.Replace(pkg[:dash], "~rc", "-rc", 1), true
}

// unameVersion returns the uname -v part of a /proc/version line: from its
// last " #" followed by a digit (the build count, "#1 SMP ...").
func unameVersion(text string) string {
	for i := len(text) - 2; i >= 0; i-- {
		if text[i] == ' ' && text[i+1] == '#' && i+2 < len(text) && text[i+2] >= '0' && text[i+2] <= '9' {
			return text[i:]
		}
	}
	return ""
}
