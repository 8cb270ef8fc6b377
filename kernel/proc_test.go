package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProcTrees judges saved procfs trees of the distributions fleets run
// (testdata/proc/NAME: version, version_signature, sys/kernel/osrelease)
// as coreguard does on a node.
func TestProcTrees(t *testing.T) {
	tests := []struct {
		tree, upstream, verdict, rule, basis string
		reason                               []string
	}{
		// Debian prints the upstream version in /proc/version; it decides
		// through the rule of its stable branch.
		{"debian-10.2", "4.19.67", "buggy", "stable-4.19", "upstream 4.19.67 from /proc/version",
			[]string{"upstream 4.19.67 from /proc/version: CFS quota throttles far below the limit"}},
		{"debian-10.3", "4.19.98", "not-buggy", "stable-4.19", "upstream 4.19.98 from /proc/version",
			[]string{"4.19.98 is at or above 4.19.84"}},
		{"debian-9-backports-4.19", "4.19.67", "buggy", "stable-4.19", "upstream 4.19.67 from /proc/version", nil},
		{"debian-8", "3.16.76", "buggy", "stable-3.16", "upstream 3.16.76 from /proc/version", nil},
		{"debian-9", "4.9.189", "unknown", "distro-unverified", "release", []string{
			"no verified rule for debian kernel 4.9.0-11-amd64",
			`upstream 4.9.189 from /proc/version does not decide either: its rule "upstream-before-4.18" covers a range of branches`,
		}},
		{"debian-11-cloud", "5.10.209", "not-buggy", "mainline-5.4", "release",
			[]string{`upstream 5.10.209 from /proc/version agrees (rule "mainline-5.4")`}},

		// Ubuntu's version_signature names the upstream version; the
		// tracker's rows for Ubuntu's own kernels come first.
		{"ubuntu-18.04", "4.15.18", "buggy", "ubuntu-4.15", "release", nil},
		{"ubuntu-18.04-aws", "4.15.18", "buggy", "ubuntu-4.15-aws", "release", nil},
		{"ubuntu-19.04", "5.0.21", "buggy", "ubuntu-5.0", "release", nil},
		{"ubuntu-19.10-azure", "5.3.18", "not-buggy", "ubuntu-5.3-azure", "release",
			[]string{`upstream 5.3.18 from /proc/version_signature agrees (rule "stable-5.3")`}},
		{"ubuntu-18.04-azure-4.18", "4.18.20", "unknown", "distro-unverified", "release", []string{
			"the Ubuntu CVE tracker gives no fixed version for this branch and flavour",
			`upstream 4.18.20 from /proc/version_signature does not decide either: its rule "upstream-4.18-5.2" covers a range`,
		}},

		// RPM distributions: no upstream version in procfs.
		{"rhel-8.1", "", "buggy", "rhel-8", "release", nil},
		{"centos-8.2", "", "not-buggy", "rhel-8", "release", nil},
		{"rocky-8.6", "", "not-buggy", "rhel-8", "release", nil},
		{"amzn2-4.14.152", "", "buggy", "amzn2-4.14", "release", nil},
		{"amzn2-4.14.154", "", "not-buggy", "amzn2-4.14", "release", nil},
		{"sles-15-sp1", "", "unknown", "distro-unverified", "release",
			[]string{"SUSE kernels have no rule: SUSE's status for CVE-2019-19922"}},

		// Kernels whose release shows the kernel.org version.
		{"cos-81", "", "not-buggy", "stable-4.19", "release", nil},
		{"flatcar", "", "not-buggy", "mainline-5.4", "release", nil},
	}
	dirs, err := os.ReadDir(filepath.Join("testdata", "proc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(tests) {
		t.Errorf("%d trees in testdata/proc, %d tested", len(dirs), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.tree, func(t *testing.T) {
			k, err := ReadProc(filepath.Join("testdata", "proc", tt.tree))
			if err != nil {
				t.Fatal(err)
			}
			if up := upstreamVersion(k); up != tt.upstream || len(k.Ignored) > 0 {
				t.Errorf("upstream %q (ignored %q), want %q", up, k.Ignored, tt.upstream)
			}
			v := Policy{}.DecideKernel(k)
			if v.String() != tt.verdict || v.Rule == nil || v.Rule.Name != tt.rule || v.Basis != tt.basis {
				t.Errorf("%s: %s by %v on %q (%s), want %s by %s on %q", k.Release, v, v.Rule, v.Basis, v.Reason, tt.verdict, tt.rule, tt.basis)
			}
			for _, want := range tt.reason {
				if !strings.Contains(v.Reason, want) {
					t.Errorf("reason %q lacks %q", v.Reason, want)
				}
			}
		})
	}
}

func upstreamVersion(k Kernel) string {
	if k.Upstream == nil {
		return ""
	}
	return k.Upstream.Version
}

func TestUpstreamFromVersion(t *testing.T) {
	tests := []struct{ line, want string }{
		{"Linux version 4.19.0-6-amd64 (debian-kernel@lists.debian.org) (gcc version 8.3.0 (Debian 8.3.0-6)) #1 SMP Debian 4.19.67-2+deb10u2 (2019-11-11)", "4.19.67"},
		{"Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)", "6.1.76"},
		{"Linux version 5.10.0-0.bpo.9-amd64 (debian-kernel@lists.debian.org) (gcc-8 (Debian 8.3.0-6) 8.3.0) #1 SMP Debian 5.10.70-1~bpo10+1 (2021-10-10)", "5.10.70"},
		{"Linux version 5.4.0-rc7-amd64 (debian-kernel@lists.debian.org) (gcc version 9.2.1 (Debian 9.2.1-19)) #1 SMP Debian 5.4~rc7-1~exp1 (2019-11-12)", "5.4-rc7"},
		// A self-built kernel compiled by Debian's gcc: only the compiler says Debian.
		{"Linux version 5.2.21 (root@build) (gcc version 8.3.0 (Debian 8.3.0-6)) #1 SMP Tue Oct 1 10:00:00 UTC 2019", ""},
		// Ubuntu's /proc/version names no upstream version.
		{"Linux version 5.3.0-1008-azure (buildd@lcy01-amd64-012) (gcc version 9.2.1 20191008 (Ubuntu 9.2.1-9ubuntu2)) #9-Ubuntu SMP Fri Dec 6 11:26:27 UTC 2019", ""},
		{"Linux version 4.18.0-147.el8.x86_64 (mockbuild@x86-vm-09.build.eng.bos.redhat.com) (gcc version 8.3.1 20190507 (Red Hat 8.3.1-4) (GCC)) #1 SMP Thu Sep 26 15:52:44 UTC 2019", ""},
		{"#1 SMP Debian", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := upstreamFromVersion(tt.line)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("upstreamFromVersion(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

func TestUpstreamFromSignature(t *testing.T) {
	for line, want := range map[string]string{
		"Ubuntu 5.3.0-1008.9-azure 5.3.18\n":              "5.3.18",
		"Ubuntu 4.15.0-66.75-generic 4.15.18":             "4.15.18",
		"Ubuntu 5.3.0-1008.9~18.04.1-azure 5.3.18":        "5.3.18",
		"Ubuntu 5.4.0-12.15-generic":                      "",
		"":                                                "",
		"Ubuntu 6.8.0-31.31-generic 6.8.1 extra-ignored?": "extra-ignored?",
	} {
		if got, ok := upstreamFromSignature(line); got != want || ok != (want != "") {
			t.Errorf("upstreamFromSignature(%q) = %q, %v; want %q", line, got, ok, want)
		}
	}
}

// TestReadProcIgnored: readings that cannot be the release's are set aside
// and said so; missing files are not an error, a missing release is.
func TestReadProcIgnored(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadProc(root); err == nil || !strings.Contains(err.Error(), "sys/kernel/osrelease") {
		t.Errorf("no osrelease: %v", err)
	}
	write("sys/kernel/osrelease", "4.15.0-66-generic\n")
	k, err := ReadProc(root)
	if err != nil || k.Release != "4.15.0-66-generic" || k.Upstream != nil || len(k.Ignored) > 0 {
		t.Errorf("only osrelease: %+v, %v", k, err)
	}
	write("version_signature", "Ubuntu 4.15.0-66.75-generic 5.4.8\n")
	write("version", "Linux version 4.15.0-66-generic #1 SMP Debian 4.15.x-1 (2019-01-01)\n")
	k, err = ReadProc(root)
	if err != nil || k.Upstream != nil || len(k.Ignored) != 2 ||
		!strings.Contains(k.Ignored[0], "/proc/version_signature names upstream 5.4.8, not of the release's branch 4.15") ||
		!strings.Contains(k.Ignored[1], "/proc/version names upstream 4.15.x, which is not a kernel.org version") {
		t.Errorf("off-branch readings: %+v, %v", k, err)
	}
	write("version_signature", "Ubuntu 4.15.0-66.75-generic 4.15.18-custom\n")
	if k, _ := ReadProc(root); k.Upstream != nil || !strings.Contains(strings.Join(k.Ignored, "\n"), "not a kernel.org version") {
		t.Errorf("distribution version as upstream: %+v", k)
	}
	write("version_signature", "Ubuntu 4.15.0-66.75-generic 4.15.18\n")
	if k, _ := ReadProc(root); k.Upstream == nil || *k.Upstream != (Upstream{"4.15.18", "/proc/version_signature"}) {
		t.Errorf("signature: %+v", k)
	}
	write("sys/kernel/osrelease", "garbage\n")
	if k, err := ReadProc(root); err != nil || k.Release != "garbage" || k.Upstream != nil {
		t.Errorf("unparsable release: %+v, %v", k, err)
	}
}

// TestReadProcRunning reads the running kernel as the plugin does.
func TestReadProcRunning(t *testing.T) {
	k, err := ReadProc(DefaultProcRoot)
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	rel, err := Running()
	if err != nil || rel != k.Release {
		t.Errorf("ReadProc(/proc).Release %q, uname %q (%v)", k.Release, rel, err)
	}
	t.Logf("running %+v: %s", k, Policy{}.DecideKernel(k).Reason)
}

// TestDecideKernelUpstream covers how an upstream version weighs in where
// the saved trees do not: against the release's own rule, and when it is
// no kernel.org version.
func TestDecideKernelUpstream(t *testing.T) {
	tests := []struct {
		kernel      Kernel
		verdict     string
		rule, basis string
		reason      string
	}{
		{Kernel{"5.3.0-1008-azure", &Upstream{"5.3.7", "/proc/version_signature"}, nil}, "not-buggy", "ubuntu-5.3-azure", "release",
			`upstream 5.3.7 from /proc/version_signature would say buggy (rule "stable-5.3"), but the distribution's own rule decides`},
		{Kernel{"4.19.0-6-amd64", &Upstream{"4.19.67-2", "/proc/version"}, nil}, "unknown", "distro-unverified", "release",
			"upstream 4.19.67-2 from /proc/version is not a kernel.org version"},
		{Kernel{"4.19.0-6-amd64", &Upstream{"5.4.8", "/proc/version"}, nil}, "not-buggy", "mainline-5.4", "upstream 5.4.8 from /proc/version",
			"upstream 5.4.8 from /proc/version: has the fix"},
		{Kernel{"4.19.0-6-amd64", nil, nil}, "unknown", "distro-unverified", "release",
			"Debian's release names its ABI (4.19.0-6), not the stable patch level"},
	}
	for _, tt := range tests {
		v := Policy{}.DecideKernel(tt.kernel)
		if v.String() != tt.verdict || v.Rule == nil || v.Rule.Name != tt.rule || v.Basis != tt.basis || !strings.Contains(v.Reason, tt.reason) {
			t.Errorf("%+v: %s by %v on %q (%s), want %s by %s on %q with %q", tt.kernel, v, v.Rule, v.Basis, v.Reason, tt.verdict, tt.rule, tt.basis, tt.reason)
		}
	}
	// A user's rule for the distribution decides before any upstream version.
	p := Policy{Add: []Rule{{Name: "mine", Distro: "debian", Branch: "4.19", Verdict: VerdictFixed, Source: "https://example.org/advisory"}}}
	if v := p.DecideKernel(Kernel{"4.19.0-6-amd64", &Upstream{"4.19.67", "/proc/version"}, nil}); v.Rule == nil || v.Rule.Name != "mine" || v.Buggy {
		t.Errorf("added rule: %+v", v)
	}
}
