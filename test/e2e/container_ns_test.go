package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// TestAdmissionContainerNamespaces: a direct CRI call can ask for a host
// namespace on the container's config alone, the sandbox's left private.
// Where the runtime honours it (CRI-O: pid and network) coreguard refuses
// it in default, from the container's own namespace list, and lets it run
// in kube-system; where the runtime does not (containerd, and CRI-O for
// ipc) the container runs, and its process is checked to be in its pod's
// namespace, not the host's.
func TestAdmissionContainerNamespaces(t *testing.T) {
	forEachRuntime(t, testAdmissionContainerNamespaces)
}

func testAdmissionContainerNamespaces(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	startAdmissionCoreguard(t, rt, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, k := range []struct {
		nsType, procFile, kind, what string
		opts                         harness.ContainerOptions
	}{
		{"pid", "pid", "host-PID", "PID", harness.ContainerOptions{Name: "main", HostPID: true}},
		{"ipc", "ipc", "host-IPC", "IPC", harness.ContainerOptions{Name: "main", HostIPC: true}},
		{"network", "net", "host-network", "network", harness.ContainerOptions{Name: "main", HostNetwork: true}},
	} {
		t.Run(k.nsType, func(t *testing.T) {
			for _, ns := range []string{"default", "kube-system"} {
				pod, err := rt.RunPod(ctx, harness.PodOptions{Name: "ctr-host-" + k.nsType, Namespace: ns})
				if err != nil {
					t.Fatal(err)
				}
				c, err := pod.RunContainer(ctx, k.opts)
				if x.containerHostNS[k.nsType] && ns == "default" {
					wantRefusal(ctx, t, pod, err, fmt.Sprintf(`%scoreguard: %s container "main" in pod default/%s rejected: `+
						`namespace "default" may not use the host's %s namespace (container has no %s namespace of its own); allowed: kube-system`,
						x.refusal, k.kind, pod.Config.Metadata.Name, k.what, k.nsType))
					recordBypass(x, "ctr-"+k.nsType, "refused in CreateContainer")
					continue
				}
				if err != nil {
					t.Fatalf("%s: container asking for the host's %s namespace on its own refused: %v", ns, k.nsType, err)
				}
				wantRunning(ctx, t, c)
				st, err := c.CPU(ctx)
				if err != nil {
					t.Fatal(err)
				}
				inHost := sameNS(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, k.procFile), "/proc/self/ns/"+k.procFile)
				if inHost != x.containerHostNS[k.nsType] {
					t.Errorf("%s: container in the host's %s namespace: %v; %s's row says %v", ns, k.nsType, inHost, x.name, x.containerHostNS[k.nsType])
				} else if ns == "default" {
					recordBypass(x, "ctr-"+k.nsType, fmt.Sprintf("runs in its pod's %s namespace: the runtime ignores the request", k.what))
				}
			}
		})
	}
}

// sameNS reports whether two /proc ns links name one namespace.
func sameNS(a, b string) bool {
	la, err1 := os.Readlink(a)
	lb, err2 := os.Readlink(b)
	return err1 == nil && err2 == nil && la == lb
}
