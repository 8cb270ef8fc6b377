package e2e

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreguard/coreguard/runtimeconfig"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/test/e2e/systemdbus"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// TestEnableNRI runs `coreguard enable-nri`, the chart's
// nri.patchRuntimeConfig init step, on a runtime whose config has NRI off
// (as containerd 1.7 and CRI-O before 1.30 ship): it turns NRI on in the
// runtime's real config file (containerd) or drop-in dir (CRI-O) and
// restarts the runtime through systemd's D-Bus API, after which the runtime
// starts the pre-installed coreguard, which pins and refuses. Run again, it
// changes nothing and restarts nothing. systemd is played on a private
// dbus-daemon (package systemdbus): these machines have none.
func TestEnableNRI(t *testing.T) {
	forEachRuntime(t, testEnableNRI)
}

func testEnableNRI(t *testing.T, x expect) {
	rt := startRuntimeWith(t, x, harness.Options{NRIOff: true})
	cg := installCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, reserveCPU0)
	name, flag, path := runtimeconfig.Containerd, "--containerd-config", rt.ConfigPath
	if x.runtime == harness.CRIO {
		name, flag, path = runtimeconfig.CRIO, "--crio-config-dir", rt.ConfigDir
	}
	unit := runtimeconfig.DefaultUnit(name)
	bus := systemdbus.Start(t, map[string]func() error{unit: rt.Restart})
	enable := func() string {
		t.Helper()
		cmd := exec.Command(cg.Bin, "enable-nri", "--runtime", name, flag, path, "--nri-socket", rt.NRISocket, "--timeout", "60s")
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
		out, err := cmd.CombinedOutput()
		t.Logf("coreguard enable-nri:\n%s", out)
		if err != nil {
			t.Fatalf("coreguard enable-nri: %v\n%s", err, rt.LogTail(20))
		}
		return string(out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// NRI off: the Guaranteed pod runs on every CPU, nothing pins it.
	g := runPod(ctx, t, rt, "before", guaranteed1)
	wantCPUs(ctx, t, g, "0-1")
	stopAndRemove(ctx, t, g)
	if n := cg.Syncs(); n != 0 {
		t.Fatalf("coreguard synchronized %d times with NRI off", n)
	}

	out := enable()
	if got := bus.Restarts(); !slices.Equal(got, []string{unit}) {
		t.Errorf("restarted %v, want [%s]", got, unit)
	}
	if !strings.Contains(out, "NRI is on: "+rt.NRISocket+" accepts plugins") {
		t.Errorf("enable-nri did not report NRI on")
	}
	if x.runtime == harness.Containerd {
		if _, err := os.Stat(rt.ConfigPath + runtimeconfig.BackupSuffix); err != nil {
			t.Errorf("containerd's config as it was: %v", err)
		}
	}
	if err := cg.WaitSyncs(1, 30*time.Second); err != nil {
		t.Fatalf("the runtime did not start the pre-installed coreguard after NRI came on: %v\n%s", err, rt.LogTail(30))
	}
	g = runPod(ctx, t, rt, "after", guaranteed1)
	wantCPUs(ctx, t, g, "1")
	refused, _, err := debugPod.run(ctx, rt, "default")
	wantRefusal(ctx, t, refused, err, x.refusal+"coreguard: privileged container")

	// The init step runs at every start of coreguard's pod: once NRI is
	// on it does nothing.
	if out := enable(); !strings.Contains(out, "nothing to change") {
		t.Errorf("second run did not find NRI on")
	}
	if got := bus.Restarts(); len(got) != 1 {
		t.Errorf("second run restarted the runtime: %v", got)
	}
}
