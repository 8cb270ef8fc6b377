// Package harness runs a private, real containerd (with NRI, runc and the
// cgroupfs driver) for end-to-end tests and drives it through the CRI gRPC
// API the way kubelet does.
package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// InstallScript is named in skip and error messages.
const InstallScript = "hack/install-e2e-deps.sh"

// Options configures one containerd instance. The zero value works.
type Options struct {
	// BinDir holds containerd, containerd-shim-runc-v2 and ctr.
	// Default: $COREGUARD_CONTAINERD_BIN, else DefaultBinDir().
	BinDir string
	// CNIBinDir holds the CNI plugins containerd runs for pods that are not
	// host-network. Default: $COREGUARD_CNI_BIN, else /usr/lib/cni.
	CNIBinDir string
	// CgroupRoot replaces kubelet's "kubepods" top-level cgroup. Default: a
	// unique name per Start so parallel tests never share cgroups.
	CgroupRoot string

	// NRI. Zero timeouts keep containerd's defaults (registration 5 s, request 2 s).
	PluginRequestTimeout      time.Duration
	PluginRegistrationTimeout time.Duration
	// RequiredPlugins enables containerd's default validator with these
	// plugin names: container creation fails while one is not connected.
	RequiredPlugins []string
	// TolerateMissingPluginsAnnotation is the validator's escape-hatch key.
	TolerateMissingPluginsAnnotation string
	// Plugins are copied into the NRI plugin_path before containerd starts
	// (pre-installed plugins, launched by containerd itself).
	Plugins []PluginFile

	// ExtraConfig is TOML appended verbatim to the generated config.
	ExtraConfig string
	// OwnProcessGroup starts containerd in its own process group, so a
	// terminal's Ctrl-C reaches only the caller, which then tears down in
	// order (through CRI) instead of finding containerd already gone.
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

// Missing returns why the e2e tests cannot run here, or "" when they can.
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

func (o *Options) defaults() {
	if o.BinDir == "" {
		o.BinDir = BinDir()
	}
	if o.CNIBinDir == "" {
		o.CNIBinDir = CNIBinDir()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 20 * time.Second
	}
}
