package harness

import (
	"os"
	"path/filepath"
	"strconv"
)

// DefaultCNIBinDir is where Debian's containernetworking-plugins installs
// the CNI plugins (hack/install-e2e-deps.sh installs it).
const DefaultCNIBinDir = "/usr/lib/cni"

// CNIBinDir is $COREGUARD_CNI_BIN, else DefaultCNIBinDir.
func CNIBinDir() string {
	if d := os.Getenv("COREGUARD_CNI_BIN"); d != "" {
		return d
	}
	return DefaultCNIBinDir
}

// cniPlugins are the plugin binaries the conflist below runs.
var cniPlugins = []string{"loopback", "static"}

// cniConfName is the one file in the private CNI conf dir.
const cniConfName = "10-coreguard-e2e.conflist"

// cniConflist gives every pod that is not host-network its own network
// namespace with only the loopback interface up: no veth, no bridge, no
// route or sysctl on the host, nothing outside the pod's netns to clean up.
//
// loopback alone is not enough for containerd 2.4: RunPodSandbox then
// fails with "failed to find network info for sandbox", because it wants
// an address on the default interface eth0 (sandbox_run.go
// setupPodNetwork) and loopback reports its addresses on "lo". So the
// chain ends with the static IPAM plugin run as a plugin of its own: it
// touches no namespace and reports 127.0.0.1 without an interface, which
// go-cni attributes to eth0. That is the address the pod really has (its
// own loopback), and the pod IP CRI reports.
func cniConflist() string {
	return `{
  "cniVersion": "1.0.0",
  "name": "coreguard-e2e",
  "plugins": [
    {"type": "loopback"},
    {"type": "static", "ipam": {"type": "static", "addresses": [{"address": "127.0.0.1/8"}]}}
  ]
}
`
}

func writeCNIConfig(confDir string) error {
	return os.WriteFile(filepath.Join(confDir, cniConfName), []byte(cniConflist()), 0o644)
}

// NetNS names the network namespace of pid, as the kernel shows it
// ("net:[4026531840]").
func NetNS(pid int) (string, error) {
	return os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
}

// HostNetNS names the host's network namespace: this process's, since the
// tests run in it. (/proc/1/ns/net would be the obvious choice, but on
// these VMs PID 1 holds a capability root lacks, so reading it fails with
// EACCES.)
func HostNetNS() (string, error) { return os.Readlink("/proc/self/ns/net") }
