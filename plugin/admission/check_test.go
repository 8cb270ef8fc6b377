package admission

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
)

// Container shapes as containerd 2.4 and CRI-O 1.34 present them to NRI.
func ordinary() *api.Container {
	return &api.Container{Name: "app",
		Mounts: []*api.Mount{
			{Destination: "/proc", Type: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &api.LinuxContainer{Resources: &api.LinuxResources{Devices: []*api.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: api.Int64(1), Minor: api.Int64(3), Access: "rwm"},
		}}},
	}
}

func privileged(hostDevices bool) *api.Container {
	c := ordinary()
	c.Mounts[1].Options = []string{"nosuid", "noexec", "nodev", "rw"}
	c.Mounts[2].Options = []string{"nosuid", "noexec", "nodev", "relatime", "rw"}
	c.Linux.Resources.Devices = append(c.Linux.Resources.Devices, &api.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
	if hostDevices {
		for i := 0; i < 102; i++ {
			c.Linux.Devices = append(c.Linux.Devices, &api.LinuxDevice{Path: "/dev/x", Type: "c"})
		}
	}
	return c
}

func writableCgroupOnly() *api.Container {
	c := ordinary()
	c.Mounts[2].Options = []string{"nosuid", "noexec", "nodev", "relatime", "rw"}
	return c
}

func sysfsOnly() *api.Container {
	c := ordinary()
	c.Mounts[1].Options = []string{"nosuid", "noexec", "nodev"}
	return c
}

func devicesOnly() *api.Container {
	c := ordinary()
	c.Linux.Resources.Devices = append(c.Linux.Resources.Devices,
		&api.LinuxDeviceCgroup{Allow: true, Type: "a", Major: api.Int64(-1), Minor: api.Int64(-1), Access: "rwm"})
	return c
}

// pod returns a pod whose namespaces list leaves out the host ones.
func pod(ns string, host ...string) *api.PodSandbox {
	var list []*api.LinuxNamespace
	for _, t := range []string{"pid", "ipc", "uts", "network", "mount"} {
		skip := false
		for _, h := range host {
			skip = skip || h == t
		}
		if !skip {
			list = append(list, &api.LinuxNamespace{Type: t, Path: "/proc/4242/ns/" + t})
		}
	}
	return &api.PodSandbox{Name: "debug", Namespace: ns, Linux: &api.LinuxPodSandbox{Namespaces: list}}
}

// fakeHost says the namespace paths under /host/ are the host's.
type fakeHost struct{}

func (fakeHost) IsHost(_, path string) bool { return strings.HasPrefix(path, "/host/") }

// crioHostPod lists host network and IPC by path, as CRI-O does.
func crioHostPod(ns string, types ...string) *api.PodSandbox {
	p := pod(ns)
	for _, n := range p.Linux.Namespaces {
		for _, t := range types {
			if n.Type == t {
				n.Path = "/host/" + t
			}
		}
	}
	return p
}

// withNamespaces gives a container its own namespace list, as the runtimes
// do: the pod's types, or, for a host type set on the container alone, one
// left out (CRI-O) or given the host's path.
func withNamespaces(c *api.Container, absent string, hostPath string) *api.Container {
	for _, t := range []string{"pid", "ipc", "uts", "network", "mount"} {
		switch t {
		case absent:
			continue
		case hostPath:
			c.Linux.Namespaces = append(c.Linux.Namespaces, &api.LinuxNamespace{Type: t, Path: "/host/" + t})
		default:
			c.Linux.Namespaces = append(c.Linux.Namespaces, &api.LinuxNamespace{Type: t, Path: "/proc/4242/ns/" + t})
		}
	}
	return c
}

type counter struct{ rejected, audited map[string]int }

func (c *counter) Rejected(k Kind, ns string) { c.rejected[string(k)+"/"+ns]++ }
func (c *counter) Audited(k Kind, ns string)  { c.audited[string(k)+"/"+ns]++ }

func checker(t *testing.T, yaml string) (*Checker, *counter) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &counter{map[string]int{}, map[string]int{}}
	return New(&cfg.Admission, fakeHost{}, log, c), c
}

func TestMatrix(t *testing.T) {
	policy := "admission:\n  privileged: [kube-system, openshift-*]\n"
	tests := []struct {
		name string
		pod  *api.PodSandbox
		ctr  *api.Container
		err  string // "" means admitted
	}{
		{"ordinary", pod("default"), ordinary(), ""},
		{"writable cgroup only", pod("default"), writableCgroupOnly(), ""},
		{"ordinary in empty namespace", pod(""), ordinary(), ""},
		{"privileged with host devices", pod("default"), privileged(true),
			`privileged container "app" in pod default/debug rejected: namespace "default" may not run privileged containers (sysfs mounted rw, all devices allowed, 102 host devices); allowed: kube-system, openshift-*`},
		{"privileged without host devices", pod("default"), privileged(false),
			`may not run privileged containers (sysfs mounted rw, all devices allowed); allowed: kube-system, openshift-*`},
		{"rw sysfs alone", pod("default"), sysfsOnly(), "(sysfs mounted rw)"},
		{"allow-all devices alone", pod("default"), devicesOnly(), "(all devices allowed)"},
		{"privileged in kube-system", pod("kube-system"), privileged(true), ""},
		{"privileged in openshift-sdn", pod("openshift-sdn"), privileged(true), ""},
		{"look-alike kube-system-evil", pod("kube-system-evil"), privileged(true), `namespace "kube-system-evil"`},
		{"look-alike Kube-System", pod("Kube-System"), privileged(true), `namespace "Kube-System"`},
		{"look-alike trailing space", pod("kube-system "), privileged(true), `namespace "kube-system "`},
		{"look-alike openshift", pod("openshift"), privileged(true), `namespace "openshift"`},
		{"privileged in empty namespace", pod(""), privileged(true), `namespace "" may not run privileged`},
		{"host PID", pod("default", "pid"), ordinary(),
			`host-PID container "app" in pod default/debug rejected: namespace "default" may not use the host's PID namespace (pod has no pid namespace of its own); allowed: kube-system`},
		{"host IPC", pod("default", "ipc"), ordinary(), "may not use the host's IPC namespace (pod has no ipc namespace of its own)"},
		{"host network", pod("default", "network"), ordinary(), "may not use the host's network namespace (pod has no network namespace of its own)"},
		{"host network by path (CRI-O)", crioHostPod("default", "network"), ordinary(), "pod's network namespace /host/network is the host's"},
		{"host IPC by path (CRI-O)", crioHostPod("default", "ipc"), ordinary(), "pod's ipc namespace /host/ipc is the host's"},
		{"host network in kube-system", pod("kube-system", "network"), ordinary(), ""},
		{"everything at once", pod("default", "pid", "ipc", "network"), privileged(true),
			`privileged, host-PID, host-IPC, host-network container "app"`},
		{"runtime listing no namespaces", &api.PodSandbox{Name: "p", Namespace: "default"}, ordinary(), ""},
		// A direct CRI call can ask for a host namespace on the container
		// alone (CRI-O honours it by leaving the entry out).
		{"container lists its own", pod("default"), withNamespaces(ordinary(), "", ""), ""},
		{"container-level host PID", pod("default"), withNamespaces(ordinary(), "pid", ""),
			"may not use the host's PID namespace (container has no pid namespace of its own)"},
		{"container-level host network", pod("default"), withNamespaces(ordinary(), "network", ""),
			"may not use the host's network namespace (container has no network namespace of its own)"},
		{"container-level host IPC by path", pod("default"), withNamespaces(ordinary(), "", "ipc"),
			"may not use the host's IPC namespace (container's ipc namespace /host/ipc is the host's)"},
		{"container-level host network in kube-system", pod("kube-system"), withNamespaces(ordinary(), "network", ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := checker(t, policy)
			err := c.Check(tt.pod, tt.ctr)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused an allowed container: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v\nwant it to contain %q", err, tt.err)
			}
		})
	}
}

func TestModes(t *testing.T) {
	for _, mode := range []string{"enforce", "audit", "off"} {
		t.Run(mode, func(t *testing.T) {
			c, n := checker(t, "admission:\n  mode: "+mode+"\n")
			err := c.Check(pod("default", "pid"), privileged(true))
			switch mode {
			case "enforce":
				if err == nil || n.rejected["privileged/default"] != 1 || n.rejected["hostPID/default"] != 1 {
					t.Fatalf("enforce: %v, %v", err, n)
				}
			case "audit":
				if err != nil || n.audited["privileged/default"] != 1 || len(n.rejected) != 0 {
					t.Fatalf("audit: %v, %v", err, n)
				}
			case "off":
				if err != nil || len(n.audited)+len(n.rejected) != 0 {
					t.Fatalf("off: %v, %v", err, n)
				}
			}
		})
	}
}

func TestEmptyAllowListAllowsNone(t *testing.T) {
	c, _ := checker(t, "admission:\n  privileged: []\n")
	if err := c.Check(pod("kube-system"), privileged(true)); err == nil || !strings.Contains(err.Error(), "allowed: no namespace") {
		t.Fatalf("want refusal naming no allowed namespace, got %v", err)
	}
}

func TestProcHostNamespaces(t *testing.T) {
	h := NewProcHostNamespaces("/proc")
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skipf("no /proc/self/ns: %v", err)
	}
	_ = self
	// This process runs in the host's network namespace unless the test
	// itself is containerised; either way its own namespace compares equal
	// to the one IsHost resolved when /proc/1 is not readable.
	if _, err := os.Stat("/proc/1/ns/net"); err == nil {
		if !h.IsHost("network", "/proc/1/ns/net") {
			t.Error("/proc/1/ns/net is not recognised as the host's")
		}
	}
	if h.IsHost("network", "/nonexistent") {
		t.Error("an unreadable path counts as the host's")
	}
	if h.IsHost("bogus", "/proc/1/ns/net") {
		t.Error("an unknown namespace type counts as the host's")
	}
}
