// Package crioharness runs a private, real CRI-O (with NRI, conmon, runc and
// the cgroupfs driver) for end-to-end tests, the CRI-O counterpart of
// test/e2e/harness, with the same shape: Start/Launch, Options, a Runtime
// with a CRI client, Stop/Kill/Start/Restart, LogTail, Close, Leftovers.
//
// Pods and containers are made by test/e2e/harness's own CRI helpers
// (RunPod, PodOptions, ContainerOptions, Container.CPU, ...): Runtime.Harness
// is a harness.Runtime that shares this CRI-O's client and cgroup root, so a
// scenario written against *harness.Runtime runs on CRI-O unchanged.
package crioharness

import (
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// InstallScript is named in skip and error messages.
const InstallScript = "hack/install-crio-deps.sh"

// Options configures one CRI-O instance. The zero value works.
type Options struct {
	// BinDir holds crio, pinns and runcwrap (the runtime_path CRI-O is
	// given, which executes runc). Default: $COREGUARD_CRIO_BIN, else
	// DefaultBinDir().
	BinDir string
	// CNIBinDir holds the CNI plugins. Default: harness.CNIBinDir().
	CNIBinDir string
	// NoCNI writes no CNI config: only host-network pods can start and CRI
	// reports NetworkReady=false (Start then waits for RuntimeReady only).
	NoCNI bool
	// CgroupRoot replaces kubelet's "kubepods" top-level cgroup. Default: a
	// unique name per Start.
	CgroupRoot string

	// NRI. Zero timeouts keep CRI-O's defaults (registration 5 s, request 2 s).
	PluginRequestTimeout      time.Duration
	PluginRegistrationTimeout time.Duration
	// RequiredPlugins and TolerateMissingPluginsAnnotation are written as
	// [crio.nri.default_validator] (nri_enable_default_validator,
	// nri_validator_required_plugins,
	// nri_validator_tolerate_missing_plugins_annotation). CRI-O v1.34.0 has
	// no such table: its NRI (a pre-v0.10 pseudo-version) has no
	// validators, and its TOML loader ignores unknown keys, so they are
	// accepted and have no effect. See TestDefaultValidatorKeysIgnored.
	RequiredPlugins                  []string
	TolerateMissingPluginsAnnotation string
	// Plugins are copied into nri_plugin_dir before CRI-O starts.
	Plugins []harness.PluginFile

	// ExtraConfig is TOML appended verbatim to the generated crio.conf.
	ExtraConfig string
	// DropIns are files written into the private --config-dir (name ->
	// TOML), read after crio.conf in name order, as /etc/crio/crio.conf.d.
	// "{{DIR}}" in the text stands for Runtime.Dir.
	DropIns map[string]string
	// OwnProcessGroup starts CRI-O in its own process group.
	OwnProcessGroup bool
	// StartTimeout bounds the wait for CRI to answer. Default 20 s.
	StartTimeout time.Duration
	// LogLevel is CRI-O's log_level. Default "info".
	LogLevel string
}

// DefaultBinDir is where hack/install-crio-deps.sh links the binaries of the
// CRI-O version it pins ($CACHE/crio -> crio-vX.Y.Z).
func DefaultBinDir() string {
	return filepath.Join(harness.CacheDir(), "crio", "bin")
}

// BinDir resolves the CRI-O binary directory from the environment.
func BinDir() string {
	if d := os.Getenv("COREGUARD_CRIO_BIN"); d != "" {
		return d
	}
	return DefaultBinDir()
}

// Conmon and Skopeo come from Debian (hack/install-crio-deps.sh).
const (
	Conmon = "/usr/bin/conmon"
	Skopeo = "skopeo"
)

// cniPlugins are the plugin binaries the conflist runs.
var cniPlugins = []string{"loopback", "static"}

// Missing returns why CRI-O e2e tests cannot run here, or "" when they can.
func Missing(binDir string) string {
	if os.Geteuid() != 0 {
		return "CRI-O e2e tests need root (CRI-O, runc and cgroup writes)"
	}
	for _, b := range []string{"crio", "pinns", "runcwrap"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return "missing " + filepath.Join(binDir, b) + ": run `sudo bash " + InstallScript +
				"` or set COREGUARD_CRIO_BIN"
		}
	}
	if _, err := os.Stat(Conmon); err != nil {
		return "missing " + Conmon + ": run `sudo bash " + InstallScript + "` (Debian's conmon)"
	}
	for _, b := range []string{"runc", Skopeo} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not in PATH: run `sudo bash " + InstallScript + "`"
		}
	}
	for _, b := range cniPlugins {
		if _, err := os.Stat(filepath.Join(harness.CNIBinDir(), b)); err != nil {
			return "missing CNI plugin " + filepath.Join(harness.CNIBinDir(), b) + ": run `sudo bash " +
				InstallScript + "` (Debian's containernetworking-plugins) or set COREGUARD_CNI_BIN"
		}
	}
	return ""
}

func (o *Options) defaults() {
	if o.BinDir == "" {
		o.BinDir = BinDir()
	}
	if o.CNIBinDir == "" {
		o.CNIBinDir = harness.CNIBinDir()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 20 * time.Second
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
}
