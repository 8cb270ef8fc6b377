package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/topology/sysfsgen"
	"github.com/coreguard/coreguard/topology/sysfsgen/sysfstest"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// coreguardBinary builds the coreguard binary as `make build` does (static,
// stripped) into a temporary directory, once per process.
func coreguardBinary(b *testing.B) string {
	b.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "coreguard-bench-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "coreguard")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binPath,
			"github.com/coreguard/coreguard/cmd/coreguard")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		b.Fatal(binErr)
	}
	return binPath
}

// removeBinary deletes the built binary; TestMain calls it.
func removeBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// epycTree writes the generated 384-CPU sysfs tree and returns its root.
func epycTree(b *testing.B) string {
	b.Helper()
	root := sysfstest.TempDir(b)
	if err := sysfsgen.Write(root, sysfsgen.Shapes()[sysfsgen.EPYC384]); err != nil {
		b.Fatal(err)
	}
	return root
}

// proc is a running `coreguard run`.
type proc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	start  time.Time // just before exec
}

// startCoreguard execs `coreguard run` against the runtime's socket. The
// cgroup root is an empty directory: the quota duty finds no cgroup tree
// and stays off (as it is for the in-process plugin), so the bench never
// writes a real cgroup.
func startCoreguard(b *testing.B, rt *nritest.Runtime, sysfs string) *proc {
	b.Helper()
	p := &proc{}
	p.cmd = exec.Command(coreguardBinary(b), "run", "--socket", rt.Socket, "--sysfs-root", sysfs,
		"--log-level", "warn", "--cgroup-root", b.TempDir())
	p.cmd.Stderr = &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.stop)
	return p
}

// stop ends the process with SIGTERM (coreguard's orderly shutdown).
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// memory reads VmRSS and VmHWM (peak RSS) from /proc/PID/status, in MiB.
func (p *proc) memory(b *testing.B) (rss, hwm float64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			b.Fatalf("/proc/%d/status %s: %q", p.cmd.Process.Pid, k, v)
		}
		if k == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
	}
	if rss == 0 {
		b.Fatalf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	}
	return rss, hwm
}

// BenchmarkStartup times `coreguard run` on the generated 384-CPU tree from
// exec to the runtime seeing it register (the adaptation's sync callback
// entered: startup-ms) and to its Synchronize answer applied (synced-ms),
// each iteration a fresh process and runtime, and reports the medians.
// The goal is startup-ms <= 100.
func BenchmarkStartup(b *testing.B) {
	sysfs := epycTree(b)
	coreguardBinary(b)
	var registered, synced []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt := nritest.StartDirect(b)
		p := startCoreguard(b, rt, sysfs)
		reg, syn := rt.WaitSyncAt(syncTimeout)
		registered = append(registered, reg.Sub(p.start))
		synced = append(synced, syn.Sub(p.start))
		p.stop()
	}
	b.StopTimer()
	b.ReportMetric(ms(median(registered)), "startup-ms")
	b.ReportMetric(ms(median(synced)), "synced-ms")
	b.ReportMetric(ms(slices.Min(registered)), "startup-min-ms")
	b.ReportMetric(ms(slices.Max(registered)), "startup-max-ms")
}

// BenchmarkFootprint measures coreguard's resident memory: idle after
// registering (rss-idle-MiB); after 1000 containers of mixed QoS were
// created through the adaptation with it connected (rss-created-MiB); and
// in a fresh process after it synchronized with those 1000 running
// (rss-synced-MiB; sync-ms is from its exec to that sync applied). One
// in 20 containers is Guaranteed with 2 CPUs (pinned: 50 of the 192
// cores), the rest alternate burstable and besteffort in the shared pool.
// -short uses 200 containers. The goal is <= 25 MiB with 1000 known.
func BenchmarkFootprint(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	sysfs := epycTree(b)
	coreguardBinary(b)
	var idle, created, synced, hwm, sync1000 []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt := nritest.StartDirect(b)
		p := startCoreguard(b, rt, sysfs)
		rt.WaitSync(syncTimeout)
		rss, _ := p.memory(b)
		idle = append(idle, rss)
		for k := range n {
			qos, res := "burstable", burstable
			switch {
			case k%20 == 0:
				qos, res = "guaranteed", nritest.Resources{RequestMilli: 2000, LimitMilli: 2000}
			case k%2 == 0:
				qos, res = "besteffort", nritest.Resources{}
			}
			pod := rt.RunPod(nritest.PodSpec{Name: fmt.Sprint("p", k), QoS: qos})
			if _, err := rt.Create(pod, "app", res); err != nil {
				b.Fatalf("container %d (%s): %v\n%s", k, qos, err, p.stderr.String())
			}
		}
		rss, _ = p.memory(b)
		created = append(created, rss)
		p.stop()

		p = startCoreguard(b, rt, sysfs)
		_, syn := rt.WaitSyncAt(syncTimeout)
		sync1000 = append(sync1000, ms(syn.Sub(p.start)))
		rss, peak := p.memory(b)
		synced = append(synced, rss)
		hwm = append(hwm, peak)
		p.stop()
	}
	b.StopTimer()
	b.ReportMetric(slices.Max(idle), "rss-idle-MiB")
	b.ReportMetric(slices.Max(created), "rss-created-MiB")
	b.ReportMetric(slices.Max(synced), "rss-synced-MiB")
	b.ReportMetric(slices.Max(hwm), "hwm-synced-MiB")
	b.ReportMetric(medianF(sync1000), "sync-ms")
	b.ReportMetric(float64(n), "containers")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(f []float64) float64 {
	s := slices.Clone(f)
	slices.Sort(s)
	return s[len(s)/2]
}
