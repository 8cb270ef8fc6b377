package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"

	"github.com/coreguard/coreguard/plugin/admission"
	"github.com/coreguard/coreguard/test/e2e/harness"
)

// How a runtime lists one of a pod's namespaces to NRI plugins
// (PodSandbox.Linux.Namespaces), as signalsOf reads it.
const (
	nsAbsent   = "absent"      // no entry of that type
	nsNoPath   = "no path"     // an entry without a path (the runtime makes it with the container)
	nsOwnPath  = "own path"    // an entry with a path to a namespace that is not the host's
	nsHostPath = "host's path" // an entry with a path to the host's own namespace
)

// signalPods are the pods TestAdmissionSignals runs (in kube-system, with
// no coreguard): one ordinary, one of each kind.
var signalPods = []struct {
	kind admission.Kind // "" for the ordinary pod
	pod  admissionPod
}{
	{"", admissionPod{pod: "ordinary", container: "main"}},
	{admission.Privileged, admissionPod{pod: "privileged", container: "main", opts: harness.PodOptions{Privileged: true}}},
	{admission.HostPID, admissionPod{pod: "hostpid", container: "main", opts: harness.PodOptions{HostPID: true}}},
	{admission.HostIPC, admissionPod{pod: "hostipc", container: "main", opts: harness.PodOptions{HostIPC: true}}},
	{admission.HostNetwork, admissionPod{pod: "hostnet", container: "main", opts: harness.PodOptions{HostNetwork: true}}},
}

// TestAdmissionSignals pins down, per runtime, what an NRI plugin is shown
// of privileged and host-namespace pods (docs/admission.md's table): an
// observer plugin reads the pods and containers from Synchronize. The pod
// namespace lists must be as the runtime's row says (expect.ordinaryNS,
// expect.hostNS), a privileged container must carry both privileged
// signals and an ordinary one neither (and the read-only sysfs that spares
// it the spec-check hook), and coreguard's own reading of them
// (admission.Inspect, with the host's namespaces from /proc as coreguard
// takes them) must find exactly the pod's kind: nothing for the ordinary
// pod, so no ordinary container is refused on either runtime.
func TestAdmissionSignals(t *testing.T) {
	forEachRuntime(t, testAdmissionSignals)
}

func testAdmissionSignals(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ids := map[string]admission.Kind{} // container ID -> kind of its pod
	for _, s := range signalPods {
		_, c, err := s.pod.run(ctx, rt, "kube-system")
		if err != nil {
			t.Fatal(err)
		}
		ids[c.ID] = s.kind
	}
	seen := observeSyncAll(t, rt.NRISocket)
	pods := map[string]*api.PodSandbox{}
	for _, p := range seen.pods {
		pods[p.GetId()] = p
	}
	host := admission.NewProcHostNamespaces("/proc")
	found := 0
	for _, c := range seen.ctrs {
		kind, ok := ids[c.GetId()]
		if !ok {
			continue
		}
		found++
		p := pods[c.GetPodSandboxId()]
		name := p.GetName()
		if kind == "" {
			name = "ordinary"
		}
		sig := signalsOf(p, c)
		t.Logf("%s %s: %s", x.name, name, sig)

		// The pod's namespace list, type by type.
		want := maps.Clone(x.ordinaryNS)
		switch kind {
		case admission.HostPID:
			want["pid"] = x.hostNS["pid"]
		case admission.HostIPC:
			want["ipc"] = x.hostNS["ipc"]
		case admission.HostNetwork:
			want["network"] = x.hostNS["network"]
		}
		for _, nsType := range []string{"pid", "ipc", "network"} {
			if got := sig.ns[nsType]; got != want[nsType] {
				t.Errorf("%s pod %s: %s namespace listed as %q, want %q", x.name, name, nsType, got, want[nsType])
			}
		}
		// The container's privileged marks: both or neither.
		if priv := kind == admission.Privileged; sig.sysfsRW != priv || sig.allowAll != priv || (sig.devices > 0) != priv {
			t.Errorf("%s pod %s: sysfs rw %v, allow-all device rule %v, %d host devices; want all present: %v",
				x.name, name, sig.sysfsRW, sig.allowAll, sig.devices, priv)
		}
		// Every unprivileged container shows the runtime's read-only
		// sysfs, so coreguard gives none the spec-check hook.
		if kind != admission.Privileged && !sig.sysfsRO {
			t.Errorf("%s pod %s: no read-only sysfs at /sys: coreguard would add its spec-check hook", x.name, name)
		}
		// What coreguard makes of it.
		var kinds []admission.Kind
		for _, f := range admission.Inspect(p, c, host) {
			kinds = append(kinds, f.Kind)
		}
		wantKinds := []admission.Kind{}
		if kind != "" {
			wantKinds = append(wantKinds, kind)
		}
		if !slices.Equal(kinds, wantKinds) && !(len(kinds) == 0 && len(wantKinds) == 0) {
			t.Errorf("%s pod %s: coreguard finds %v, want %v", x.name, name, kinds, wantKinds)
		}
	}
	if found != len(signalPods) {
		t.Fatalf("Synchronize listed %d of our %d containers", found, len(signalPods))
	}
}

// podSignals is what a plugin sees of one pod and its container.
type podSignals struct {
	ns       map[string]string // namespace type -> nsAbsent, nsNoPath, nsOwnPath, nsHostPath
	paths    map[string]string
	sysfsRW  bool // /sys mounted as sysfs without "ro"
	sysfsRO  bool // /sys mounted as sysfs "ro": coreguard adds no spec-check hook
	allowAll bool // device cgroup rule "a *:* rwm"
	devices  int  // host devices in Linux.Devices
}

func (s podSignals) String() string {
	var ns []string
	for _, t := range []string{"pid", "ipc", "network"} {
		v := s.ns[t]
		if p := s.paths[t]; p != "" {
			v += " " + p
		}
		ns = append(ns, t+": "+v)
	}
	return fmt.Sprintf("%s; sysfs rw %v, allow-all device rule %v, %d host devices", strings.Join(ns, "; "), s.sysfsRW, s.allowAll, s.devices)
}

func signalsOf(p *api.PodSandbox, c *api.Container) podSignals {
	s := podSignals{ns: map[string]string{}, paths: map[string]string{}}
	for _, t := range []string{"pid", "ipc", "network"} {
		s.ns[t] = nsAbsent
	}
	for _, n := range p.GetLinux().GetNamespaces() {
		switch {
		case n.GetPath() == "":
			s.ns[n.GetType()] = nsNoPath
		case isHostNS(n.GetType(), n.GetPath()):
			s.ns[n.GetType()] = nsHostPath
		default:
			s.ns[n.GetType()] = nsOwnPath
		}
		s.paths[n.GetType()] = n.GetPath()
	}
	for _, m := range c.GetMounts() {
		if m.GetDestination() == "/sys" && m.GetType() == "sysfs" {
			s.sysfsRO = slices.Contains(m.GetOptions(), "ro")
			s.sysfsRW = !s.sysfsRO
		}
	}
	s.allowAll = slices.ContainsFunc(c.GetLinux().GetResources().GetDevices(), func(d *api.LinuxDeviceCgroup) bool {
		wild := func(o *api.OptionalInt64) bool { return o == nil || o.GetValue() == -1 }
		return d.GetAllow() && d.GetAccess() == "rwm" && (d.GetType() == "" || d.GetType() == "a") && wild(d.GetMajor()) && wild(d.GetMinor())
	})
	s.devices = len(c.GetLinux().GetDevices())
	return s
}

// isHostNS: path names the same namespace (device and inode) as this
// process's, which runs in the host's (/proc/1/ns is unreadable here).
func isHostNS(nsType, path string) bool {
	file := map[string]string{"pid": "pid", "ipc": "ipc", "network": "net"}[nsType]
	var a, b syscall.Stat_t
	if file == "" || syscall.Stat(path, &a) != nil || syscall.Stat("/proc/self/ns/"+file, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
