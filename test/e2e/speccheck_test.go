package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// TestAdmissionPrivilegedWithoutHostDevices: on a runtime handler with
// privileged_without_host_devices (harness.NoHostDevicesHandler), a
// privileged container with a pod volume at /sys shows NRI no privileged
// mark; coreguard gives it its spec-check hook, which the runtime runs on
// the final spec: refused in default (at creation on CRI-O, at start on
// containerd, where the task is made), its exclusive core given back; it
// runs in kube-system. The same container without the volume is refused
// from NRI's view (sysfs rw); an unprivileged one with the volume runs in
// default.
func TestAdmissionPrivilegedWithoutHostDevices(t *testing.T) {
	forEachRuntime(t, testNoHostDevices)
}

func testNoHostDevices(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	cg := startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, reserveCPU0+"\nstartTimeout: 2s\nmetricsAddress: \"127.0.0.1:0\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := runPod(ctx, t, rt, "burstable", burstable)
	wantCPUs(ctx, t, b, "0-1")
	sys := t.TempDir() // the pod's volume at /sys
	// Each container refused asks for an exclusive core, to see it back;
	// those that run share the pool.
	run := func(name, ns string, privileged, volume bool) (*harness.Pod, *harness.Container, error) {
		t.Helper()
		res := burstable
		if ns == "default" && privileged {
			res = guaranteed1
		}
		pod, err := rt.RunPod(ctx, harness.PodOptions{Name: name, Namespace: ns, Privileged: privileged,
			RuntimeHandler: harness.NoHostDevicesHandler, Containers: []harness.Resources{res}})
		if err != nil {
			t.Fatal(err)
		}
		o := harness.ContainerOptions{Name: "agent", Privileged: privileged, Resources: res}
		if volume {
			o.Volumes = map[string]string{"/sys": sys}
		}
		c, err := pod.RunContainer(ctx, o)
		return pod, c, err
	}

	t.Run("privileged with a /sys volume in default", func(t *testing.T) {
		_, _, err := run("sys-volume", "default", true, true)
		want := regexp.QuoteMeta(`coreguard hook: privileged container "agent" in pod default/sys-volume rejected: `+
			`namespace "default" may not run privileged containers (CAP_SYS_ADMIN, /proc/sys writable, no masked paths, `) +
			`\d+` + regexp.QuoteMeta(` capabilities); allowed: kube-system`)
		// CRI-O passes runc's log line on, its quotes escaped.
		if err == nil || !regexp.MustCompile(want).MatchString(strings.ReplaceAll(err.Error(), `\"`, `"`)) {
			t.Fatalf("error %v\nwant one matching %s", err, want)
		}
		if !strings.HasPrefix(err.Error(), x.hooksAt+" agent") {
			t.Fatalf("refused in %s, want %s: %v", strings.Fields(err.Error())[0], x.hooksAt, err)
		}
		t.Logf("refused: %v", err)
		waitCountsBack(t, cg)
		waitPoolBack(ctx, t, x, b)
		recordBypass(x, "nodev-sys", fmt.Sprintf("refused in %s by the spec-check hook (`CAP_SYS_ADMIN, /proc/sys writable`); its exclusive core given back", x.hooksAt))
	})
	t.Run("privileged without the volume in default", func(t *testing.T) {
		pod, _, err := run("no-volume", "default", true, false)
		wantRefusalRe(ctx, t, pod, err, "^"+regexp.QuoteMeta(x.refusal+`coreguard: privileged container "agent" in pod default/no-volume rejected: `+
			`namespace "default" may not run privileged containers (sysfs mounted rw); allowed: kube-system`)+"$")
		waitCountsBack(t, cg)
		recordBypass(x, "nodev", "refused in CreateContainer (`sysfs mounted rw`)")
	})
	t.Run("unprivileged with a /sys volume in default", func(t *testing.T) {
		_, c, err := run("unprivileged", "default", false, true)
		if err != nil {
			t.Fatal(err)
		}
		wantRunning(ctx, t, c)
		recordBypass(x, "sys-unprivileged", "runs")
	})
	t.Run("privileged with a /sys volume in kube-system", func(t *testing.T) {
		_, c, err := run("sys-volume", "kube-system", true, true)
		if err != nil {
			t.Fatal(err)
		}
		st := wantRunning(ctx, t, c)
		if st.Spec != nil && st.Spec.Linux != nil && len(st.Spec.Linux.Devices) > 0 {
			t.Errorf("privileged container on %s got %d host devices", harness.NoHostDevicesHandler, len(st.Spec.Linux.Devices))
		}
		recordBypass(x, "nodev-sys-allowed", "runs")
	})
}
