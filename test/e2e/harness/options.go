// Package harness runs a private, real container runtime for end-to-end
// tests, containerd or CRI-O (Options.Runtime), each with NRI, runc and the
// cgroupfs driver, and drives it through the CRI gRPC API the way kubelet
// does. One Runtime type serves both: what differs (configuration, command
// line, image import, readiness) is behind the backend interface
// (containerd.go, crio.go).
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// InstallScript is named in skip and error messages (containerd).
const InstallScript = "hack/install-e2e-deps.sh"

// CRIOInstallScript builds CRI-O and installs conmon and skopeo.
const CRIOInstallScript = "hack/install-crio-deps.sh"

// Runtimes Options.Runtime names.
const (
	Containerd = "containerd"
	CRIO       = "cri-o"
)

// Runtimes lists every runtime the harness runs, in the order the tests
// run them.
var Runtimes = []string{Containerd, CRIO}

// Options configures one runtime instance. The zero value works (containerd).
type Options struct {
	// Runtime is Containerd (default) or CRIO.
	Runtime string
	// BinDir holds containerd, containerd-shim-runc-v2 and ctr (Default:
	// $COREGUARD_CONTAINERD_BIN, else DefaultBinDir()), or for CRI-O crio,
	// pinns and runcwrap (Default: $COREGUARD_CRIO_BIN, else
	// DefaultCRIOBinDir()).
	BinDir string
	// CNIBinDir holds the CNI plugins containerd runs for pods that are not
	// host-network. Default: $COREGUARD_CNI_BIN, else /usr/lib/cni.
	CNIBinDir string
	// CgroupRoot replaces kubelet's "kubepods" top-level cgroup. Default: a
	// unique name per Start so parallel tests never share cgroups.
	CgroupRoot string

	// NRI. Zero timeouts keep the runtime's defaults (registration 5 s, request 2 s).
	PluginRequestTimeout      time.Duration
	PluginRegistrationTimeout time.Duration
	// RequiredPlugins enables the runtime's default validator with these
	// plugin names: container creation fails while one is not connected.
	// containerd 2.4.2 enforces it. For CRI-O it is written as
	// [crio.nri.default_validator], which v1.34.0 does not have: its NRI (a
	// pre-v0.10 pseudo-version) has no validators and its TOML loader
	// ignores unknown keys, so it is accepted and has no effect.
	RequiredPlugins []string
	// TolerateMissingPluginsAnnotation is the validator's escape-hatch key.
	TolerateMissingPluginsAnnotation string
	// Plugins are copied into the NRI plugin_path before containerd starts
	// (pre-installed plugins, launched by containerd itself).
	Plugins []PluginFile

	// NRIOff starts the runtime with NRI turned off in its config (as
	// containerd 1.7 and CRI-O before 1.30 ship): no NRI socket, no
	// pre-installed plugin started, until the config turns it on and the
	// runtime restarts.
	NRIOff bool

	// ExtraConfig is TOML appended verbatim to the generated config.
	ExtraConfig string
	// DropIns (CRI-O only) are files written into the private --config-dir
	// (name -> TOML), read after crio.conf in name order, as
	// /etc/crio/crio.conf.d. "{{DIR}}" in the text stands for Runtime.Dir.
	DropIns map[string]string
	// NoCNI (CRI-O only) writes no CNI config: only host-network pods can
	// start, CRI reports NetworkReady=false and Start waits for
	// RuntimeReady only.
	NoCNI bool
	// LogLevel is the runtime's log level. Default "info".
	LogLevel string
	// OwnProcessGroup starts the runtime in its own process group, so a
	// terminal's Ctrl-C reaches only the caller, which then tears down in
	// order (through CRI) instead of finding the runtime already gone.
	OwnProcessGroup bool
	// StartTimeout bounds the wait for CRI to answer. Default 20 s.
	StartTimeout time.Duration
}

// PluginFile is a pre-installed NRI plugin: an executable named "NN-name"
// and, optionally, its config text (written as NN-name.conf).
type PluginFile struct {
	Name   string // "10-coreguard"
	Source string // path of the executable to copy
	Config string // written to plugin_config_path/Name.conf when not empty
}

// CacheDir is $COREGUARD_CACHE, default /var/cache/coreguard.
func CacheDir() string {
	if c := os.Getenv("COREGUARD_CACHE"); c != "" {
		return c
	}
	return "/var/cache/coreguard"
}

// DefaultBinDir is where hack/install-e2e-deps.sh links the binaries of
// the containerd version it pins ($CACHE/containerd -> containerd-vX.Y.Z),
// so the version is written in the script only.
func DefaultBinDir() string {
	return filepath.Join(CacheDir(), "containerd", "bin")
}

// BinDir resolves the containerd binary directory from the environment.
func BinDir() string {
	if d := os.Getenv("COREGUARD_CONTAINERD_BIN"); d != "" {
		return d
	}
	return DefaultBinDir()
}

// DefaultCRIOBinDir is where hack/install-crio-deps.sh links the binaries
// of the CRI-O version it pins ($CACHE/crio -> crio-vX.Y.Z).
func DefaultCRIOBinDir() string {
	return filepath.Join(CacheDir(), "crio", "bin")
}

// CRIOBinDir resolves the CRI-O binary directory from the environment.
func CRIOBinDir() string {
	if d := os.Getenv("COREGUARD_CRIO_BIN"); d != "" {
		return d
	}
	return DefaultCRIOBinDir()
}

// BinDirFor is the binary directory of a runtime (Containerd or CRIO).
func BinDirFor(runtime string) string {
	if runtime == CRIO {
		return CRIOBinDir()
	}
	return BinDir()
}

// MissingFor returns why runtime (Containerd or CRIO) cannot run here with
// the binaries in binDir ("" = BinDirFor(runtime)), or "" when it can.
func MissingFor(runtime, binDir string) string {
	if binDir == "" {
		binDir = BinDirFor(runtime)
	}
	switch runtime {
	case "", Containerd:
		return Missing(binDir)
	case CRIO:
		return MissingCRIO(binDir)
	}
	return fmt.Sprintf("unknown runtime %q (want %q or %q)", runtime, Containerd, CRIO)
}

// Missing returns why the containerd e2e tests cannot run here, or "" when
// they can.
func Missing(binDir string) string {
	if os.Geteuid() != 0 {
		return "e2e tests need root (containerd, runc and cgroup writes)"
	}
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return "missing " + filepath.Join(binDir, b) + ": run `sudo bash " + InstallScript +
				"` or set COREGUARD_CONTAINERD_BIN"
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "runc not in PATH: run `sudo bash " + InstallScript + "`"
	}
	for _, b := range cniPlugins {
		if _, err := os.Stat(filepath.Join(CNIBinDir(), b)); err != nil {
			return "missing CNI plugin " + filepath.Join(CNIBinDir(), b) + ": run `sudo bash " + InstallScript +
				"` (Debian's containernetworking-plugins) or set COREGUARD_CNI_BIN"
		}
	}
	return ""
}

// MissingCRIO returns why the CRI-O e2e tests cannot run here, or "" when
// they can.
func MissingCRIO(binDir string) string {
	if os.Geteuid() != 0 {
		return "CRI-O e2e tests need root (CRI-O, runc and cgroup writes)"
	}
	for _, b := range []string{"crio", "pinns", "runcwrap"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return "missing " + filepath.Join(binDir, b) + ": run `sudo bash " + CRIOInstallScript +
				"` or set COREGUARD_CRIO_BIN"
		}
	}
	if _, err := os.Stat(Conmon); err != nil {
		return "missing " + Conmon + ": run `sudo bash " + CRIOInstallScript + "` (Debian's conmon)"
	}
	for _, b := range []string{"runc", Skopeo, "unshare"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not in PATH: run `sudo bash " + CRIOInstallScript + "`"
		}
	}
	for _, b := range cniPlugins {
		if _, err := os.Stat(filepath.Join(CNIBinDir(), b)); err != nil {
			return "missing CNI plugin " + filepath.Join(CNIBinDir(), b) + ": run `sudo bash " +
				CRIOInstallScript + "` (Debian's containernetworking-plugins) or set COREGUARD_CNI_BIN"
		}
	}
	return ""
}

func (o *Options) defaults() {
	if o.Runtime == "" {
		o.Runtime = Containerd
	}
	if o.BinDir == "" {
		o.BinDir = BinDirFor(o.Runtime)
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.CNIBinDir == "" {
		o.CNIBinDir = CNIBinDir()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 20 * time.Second
	}
}
