package kernel

import "fmt"

// Kernel is what procfs tells of one kernel: its release (uname -r) and,
// where the distribution prints it, the upstream version the kernel is
// built from.
type Kernel struct {
	// Release is the kernel release string (sys/kernel/osrelease, uname -r).
	Release string `json:"release"`
	// Upstream is the kernel.org version the distribution says the kernel
	// is built from; nil when procfs does not say.
	Upstream *Upstream `json:"upstream,omitempty"`
	// Ignored says which procfs readings were present but not used, and why.
	Ignored []string `json:"ignored,omitempty"`
}

// Upstream is an upstream version read from procfs.
type Upstream struct {
	// Version is the kernel.org version, e.g. "4.19.67".
	Version string `json:"version"`
	// From names the file it was read from: /proc/version or
	// /proc/version_signature (named so whatever the procfs root was).
	From string `json:"from"`
}

// String is "upstream 4.19.67 from /proc/version".
func (u Upstream) String() string { return fmt.Sprintf("upstream %s from %s", u.Version, u.From) }

// kernelOrg reports whether the release is a bare kernel.org version
// (MAJOR.MINOR[.PATCH][-rcN]), as an upstream version read from procfs
// must be.
func (r Release) kernelOrg() bool { return r.Local == "" }
