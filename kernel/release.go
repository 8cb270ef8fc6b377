// Package kernel tells whether a Linux kernel has the CFS bandwidth
// throttling bug: commit 512ac999d275 ("sched/fair: Fix bandwidth timer
// clock drift condition", mainline 4.18) made per-CPU quota slices expire
// for real, so highly threaded containers on many-core machines are
// throttled far below their CPU limit; de53fd7aedb1 ("sched/fair: Fix low
// cpu usage with high throttling by removing expiration of cpu-local
// slices", mainline 5.4, CVE-2019-19922) fixed it.
//
// Parse reads a kernel release string (uname -r) into a Release; a Policy
// (the default table of rules, plus rules added and removed by the
// configuration) decides a Verdict for it. ReadProc reads a kernel from
// procfs: its release and, where the distribution prints it (Debian's
// /proc/version, Ubuntu's /proc/version_signature), the upstream version
// it is built from, which decides when the release cannot. Every rule
// says where it comes from (URLs). A release no rule can decide, or that
// does not parse, is "unknown", and the policy says what unknown means.
package kernel

import (
	"fmt"
	"strconv"
	"strings"
)

// Release is a parsed kernel release string.
//
// The mainline part (Major.Minor.Patch, with -rcN) is what kernel.org
// tagged; Local is everything after it, verbatim. The fields after Local
// are what Parse recognised in Local: a distribution's build numbers, its
// dist marker, flavour and architecture. They are derived from Local, so
// Parse(r.String()) gives r back.
type Release struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
	Patch int `json:"patch"` // 0 for a two-part version like "5.4"
	// RC is N of a release candidate -rcN (6.8.0-rc3 → 3); 0 for a release.
	RC int `json:"rc,omitempty"`
	// Local is the text after the mainline version and -rcN, verbatim:
	// "-67-generic", "-1062.8.1.el7.x86_64", "+", "-custom".
	Local string `json:"local,omitempty"`

	// Distro is the distribution Parse recognised in Local:
	//   ubuntu    X.Y.Z-ABI-flavour with an Ubuntu flavour (generic, aws, ...)
	//   debian    X.Y.Z-ABI-flavour with a Debian flavour (amd64, cloud-amd64, ...)
	//   el7, el8, amzn2, fc39, ...   the dist marker of an RPM kernel
	//             (X.Y.Z-BUILD.DIST.ARCH); "el8_5" gives distro "el8"
	//   coreos, flatcar   X.Y.Z-coreos[...], X.Y.Z-flatcar[...]
	//   other     a packaged kernel with build numbers Parse cannot place
	//             (SUSE's 4.12.14-122.37-default, 4.19.84-1-custom, ...)
	//   ""        upstream: no local version, or one without build numbers
	//             ("+", "-custom", "-00001-gabcdef", Ubuntu's mainline
	//             PPA builds 5.4.0-050400-generic)
	Distro string `json:"distro,omitempty"`
	// Build is the distribution's build numbers: Ubuntu/Debian ABI [67];
	// RHEL [1062 8 1]; Amazon Linux [128 181]. Compared numerically.
	Build []int `json:"build,omitempty"`
	// Dist is the RPM dist marker as written ("el7", "el8_5", "amzn2").
	Dist string `json:"dist,omitempty"`
	// Flavour is the Ubuntu/Debian flavour ("generic", "aws", "cloud-amd64").
	Flavour string `json:"flavour,omitempty"`
	// Arch is the architecture of an RPM kernel ("x86_64", "aarch64").
	Arch string `json:"arch,omitempty"`
}

// maxRelease bounds the input: utsname.release holds 64 bytes.
const maxRelease = 256

// maxDigits bounds each number so it fits an int everywhere.
const maxDigits = 9

// Parse reads a kernel release string such as "4.15.0-67-generic",
// "3.10.0-1062.8.1.el7.x86_64", "6.8.0-rc3" or "5.4". Surrounding white
// space is ignored. The error names the input and what is wrong with it.
func Parse(release string) (Release, error) {
	s := strings.TrimSpace(release)
	fail := func(format string, args ...any) (Release, error) {
		return Release{}, fmt.Errorf("kernel release %q: %s", release, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty")
	}
	if len(s) > maxRelease {
		return fail("%d bytes long, longer than any kernel release (at most %d)", len(s), maxRelease)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !releaseChar(c) {
			return fail("character %q at byte %d is not allowed (letters, digits and . - + _ ~ only)", c, i)
		}
	}
	var r Release
	rest := s
	nums := make([]int, 0, 3)
	for len(nums) < 3 {
		digits := leadingDigits(rest)
		if digits == "" { // only for the first: the loop continues on ".DIGIT"
			return fail("does not start with a version number (MAJOR.MINOR[.PATCH], e.g. 5.4.0)")
		}
		n, err := number(digits)
		if err != nil {
			return fail("%v", err)
		}
		nums = append(nums, n)
		rest = rest[len(digits):]
		if len(nums) == 3 || !strings.HasPrefix(rest, ".") || leadingDigits(rest[1:]) == "" {
			break
		}
		rest = rest[1:]
	}
	if len(nums) < 2 {
		return fail("needs at least MAJOR.MINOR, e.g. 5.4")
	}
	r.Major, r.Minor = nums[0], nums[1]
	if len(nums) == 3 {
		r.Patch = nums[2]
	}
	if strings.HasPrefix(rest, "-rc") {
		digits := leadingDigits(rest[3:])
		if digits == "" {
			return fail("-rc without a number (e.g. 6.8.0-rc3)")
		}
		n, err := number(digits)
		if err != nil {
			return fail("%v", err)
		}
		if n == 0 {
			return fail("-rc0 is not a release candidate (they count from -rc1)")
		}
		r.RC = n
		rest = rest[3+len(digits):]
	}
	if rest != "" && !strings.ContainsRune("-+._~", rune(rest[0])) {
		return fail("unexpected %q after the version %s (a local version starts with - + . _ or ~)", rest, s[:len(s)-len(rest)])
	}
	r.Local = rest
	if err := r.classify(); err != nil {
		return fail("%v", err)
	}
	return r, nil
}

// MustParse is Parse for constants; it panics on error.
func MustParse(release string) Release {
	r, err := Parse(release)
	if err != nil {
		panic(err)
	}
	return r
}

func releaseChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-+_~", c) >= 0
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func number(digits string) (int, error) {
	trimmed := strings.TrimLeft(digits, "0")
	if len(trimmed) > maxDigits {
		return 0, fmt.Errorf("number %s is too large (at most %d digits)", digits, maxDigits)
	}
	return strconv.Atoi(digits)
}

// classify fills the distribution fields from Local.
func (r *Release) classify() error {
	l := r.Local
	switch {
	case l == "" || !strings.HasPrefix(l, "-"):
		return nil // upstream: "", "+", ".27" (2.6.32.27), "_foo"
	case hasWordPrefix(l, "-coreos"):
		r.Distro = "coreos"
		return nil
	case hasWordPrefix(l, "-flatcar"):
		r.Distro = "flatcar"
		return nil
	}
	body := l[1:]
	digits := leadingDigits(body)
	if digits == "" {
		return nil // a local version without build numbers: "-custom", "-gabcdef"
	}
	// Build numbers: N or N.N.N..., then the dist marker or flavour.
	var build []int
	i := 0
	for {
		d := leadingDigits(body[i:])
		if d == "" {
			break
		}
		n, err := number(d)
		if err != nil {
			return err
		}
		build = append(build, n)
		i += len(d)
		if i < len(body) && body[i] == '.' && leadingDigits(body[i+1:]) != "" {
			i++
			continue
		}
		break
	}
	after := body[i:]
	switch {
	case gitDescribe(after):
		// CONFIG_LOCALVERSION_AUTO of a git tree: 6.8.0-rc3-00001-gabcdef12.
		return nil
	case after == "":
		// "4.19.84-1": a build number alone (a self-built package).
		r.Distro, r.Build = "other", build
	case after[0] == '.':
		// RPM: BUILD.DIST[.ARCH][rest], e.g. 1062.8.1.el7.x86_64.
		dist, arch := rpmDistArch(after[1:])
		r.Build, r.Dist, r.Arch = build, dist, arch
		r.Distro = "other"
		if dist != "" {
			r.Distro = dist
			if k := strings.IndexByte(dist, '_'); k > 0 {
				r.Distro = dist[:k] // el8_5 → el8
			}
		}
	case after[0] == '-' && len(after) > 1 && flavourName(after[1:]):
		// Debian/Ubuntu: ABI-flavour, e.g. 67-generic, 28-cloud-amd64.
		r.Build, r.Flavour = build, after[1:]
		switch {
		case len(build) == 1 && len(digits) == 6 && digits[0] == '0' &&
			digits == fmt.Sprintf("%02d%02d%02d", r.Major, r.Minor, r.Patch):
			// Ubuntu's mainline kernel PPA (5.4.0-050400-generic):
			// an upstream kernel built with Ubuntu's configuration.
			r.Distro, r.Build = "", nil
		case len(build) == 1 && ubuntuFlavour(r.Flavour):
			r.Distro = "ubuntu"
		case len(build) == 1 && debianFlavour(r.Flavour):
			r.Distro = "debian"
		default:
			r.Distro = "other"
		}
	default:
		// Numbers then something else ("-1foo", "-1_x"): a packaged kernel
		// we cannot place.
		r.Distro, r.Build = "other", build
	}
	return nil
}

// gitDescribe reports whether s is "-gHEX" (at least 7 hex digits),
// optionally followed by "-dirty" or "+": what scripts/setlocalversion
// appends after the commit count in a kernel built from git.
func gitDescribe(s string) bool {
	if !strings.HasPrefix(s, "-g") {
		return false
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s[2:], "+"), "-dirty")
	if len(s) < 7 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// hasWordPrefix reports whether s starts with p followed by nothing or a
// separator (so "-coreos-r1" matches "-coreos" but "-coreosx" does not).
func hasWordPrefix(s, p string) bool {
	return strings.HasPrefix(s, p) && (len(s) == len(p) || strings.IndexByte("-+._~", s[len(p)]) >= 0)
}

// rpmDistArch splits "el7.x86_64", "amzn2.x86_64+debug", "el8_5" into the
// dist marker (letters then a digit: el7, amzn2, fc39, el7uek) and the
// architecture; either may be empty.
func rpmDistArch(s string) (dist, arch string) {
	end := strings.IndexAny(s, ".+~-")
	if end < 0 {
		end = len(s)
	}
	word := s[:end]
	if !distMarker(word) {
		return "", ""
	}
	dist = word
	if end < len(s) && s[end] == '.' {
		a := s[end+1:]
		if k := strings.IndexAny(a, ".+~-"); k >= 0 {
			a = a[:k]
		}
		if knownArch(a) {
			arch = a
		}
	}
	return dist, arch
}

// distMarker: lower-case letters, then a digit, then letters, digits, '_'.
func distMarker(w string) bool {
	i := 0
	for i < len(w) && w[i] >= 'a' && w[i] <= 'z' {
		i++
	}
	if i == 0 || i == len(w) || w[i] < '0' || w[i] > '9' {
		return false
	}
	for ; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func knownArch(a string) bool {
	switch a {
	case "x86_64", "aarch64", "i686", "i386", "ppc64le", "ppc64", "s390x", "armv7hl", "armv7l", "riscv64", "noarch":
		return true
	}
	return false
}

// flavourName: lower-case words of letters and digits joined by '-'.
func flavourName(f string) bool {
	if f == "" || f[0] == '-' || f[len(f)-1] == '-' || strings.Contains(f, "--") {
		return false
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ubuntuFlavour: the flavours of Ubuntu's kernel packages (linux-image-X-FLAVOUR).
func ubuntuFlavour(f string) bool {
	base, _, _ := strings.Cut(f, "-")
	switch base {
	case "generic", "lowlatency", "aws", "azure", "gcp", "gke", "gkeop", "kvm", "oracle", "oem",
		"ibm", "raspi", "raspi2", "snapdragon", "euclid", "intel", "nvidia", "realtime", "xilinx", "bluefield", "fips":
		return true
	}
	return false
}

// debianFlavour: Debian's flavours name the architecture, optionally after
// cloud- or rt- (amd64, cloud-amd64, rt-arm64, 686-pae, armmp-lpae).
func debianFlavour(f string) bool {
	f = strings.TrimPrefix(f, "cloud-")
	f = strings.TrimPrefix(f, "rt-")
	switch f {
	case "amd64", "arm64", "686", "686-pae", "armmp", "armmp-lpae", "marvell", "rpi", "s390x",
		"powerpc64le", "powerpc64", "4kc-malta", "5kc-malta", "octeon", "loongson-3", "mips32r2el",
		"mips64r2el", "mips32r6el", "mips64r6el", "riscv64", "parisc", "parisc64", "m68k", "sparc64",
		"alpha-generic", "alpha-smp", "itanium", "mckinley", "powerpc", "powerpc-smp", "ppc64", "ppc64el":
		return true
	}
	return false
}

// String is the release in canonical form: MAJOR.MINOR.PATCH, then -rcN,
// then Local as it was ("5.4" gives "5.4.0", "05.4" gives "5.4.0").
func (r Release) String() string {
	s := fmt.Sprintf("%d.%d.%d", r.Major, r.Minor, r.Patch)
	if r.RC > 0 {
		s += fmt.Sprintf("-rc%d", r.RC)
	}
	return s + r.Local
}

// Mainline is the kernel.org version the release is built from, e.g.
// "4.15.0" for 4.15.0-67-generic, "6.8.0-rc3" for 6.8.0-rc3+.
func (r Release) Mainline() string {
	return Release{Major: r.Major, Minor: r.Minor, Patch: r.Patch, RC: r.RC}.String()
}

// Branch is MAJOR.MINOR, e.g. "4.19".
func (r Release) Branch() string { return fmt.Sprintf("%d.%d", r.Major, r.Minor) }

// Upstream reports whether the release is a kernel.org kernel as far as the
// string tells (no distribution recognised).
func (r Release) Upstream() bool { return r.Distro == "" }

// Compare orders releases numerically: by major, minor, patch, then a
// release candidate before its release (6.8.0-rc3 < 6.8.0), then the
// distribution build numbers element by element (a missing number counts
// as 0, so 3.10.0-1062.el7 < 3.10.0-1062.8.1.el7). Distro, flavour and
// other text are not compared. It returns -1, 0 or +1.
func Compare(a, b Release) int {
	for _, d := range [...][2]int{{a.Major, b.Major}, {a.Minor, b.Minor}, {a.Patch, b.Patch}, {rcRank(a), rcRank(b)}} {
		if c := cmpInt(d[0], d[1]); c != 0 {
			return c
		}
	}
	for i := 0; i < len(a.Build) || i < len(b.Build); i++ {
		if c := cmpInt(at(a.Build, i), at(b.Build, i)); c != 0 {
			return c
		}
	}
	return 0
}

func rcRank(r Release) int {
	if r.RC == 0 {
		return int(^uint(0) >> 1)
	}
	return r.RC
}

func at(xs []int, i int) int {
	if i < len(xs) {
		return xs[i]
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
