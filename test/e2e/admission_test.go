package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/test/e2e/coreguard"
	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// tolerateMissing is the validator's escape-hatch annotation, named as in
// docs/admission.md.
const tolerateMissing = "coreguard.io/tolerate-missing"

// admissionPod is a pod asking for some of what admission judges, with one
// container.
type admissionPod struct {
	pod, container string
	opts           harness.PodOptions // Privileged, HostPID, HostIPC, HostNetwork, Annotations
}

// run runs the pod in namespace ns and creates and starts its container
// (privileged when the pod is). The sandbox itself is never refused:
// admission judges containers.
func (a admissionPod) run(ctx context.Context, rt *harness.Runtime, ns string) (*harness.Pod, *harness.Container, error) {
	o := a.opts
	o.Name, o.Namespace = a.pod, ns
	pod, err := rt.RunPod(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: a.container, Privileged: o.Privileged})
	return pod, c, err
}

var (
	ordinaryPod = admissionPod{pod: "web", container: "app"}
	debugPod    = admissionPod{pod: "debug", container: "agent", opts: harness.PodOptions{Privileged: true}}
)

// admissionKinds: each kind alone, then all four at once (a node agent
// like kube-proxy or a CNI daemon). want is coreguard's message for the
// pod in "default", literal but for {devices} (the number of host
// devices) and {hostNetwork}, {hostIPC} (the runtime's reason, expect).
var admissionKinds = []struct {
	name    string
	pod     admissionPod
	reasons []string // metric reason labels
	want    string
}{
	{"privileged", debugPod, []string{"privileged"},
		`privileged container "agent" in pod default/debug rejected: namespace "default" may not run privileged containers ` +
			`(sysfs mounted rw, all devices allowed, {devices} host devices); allowed: kube-system`},
	{"hostPID", admissionPod{"hostpid", "main", harness.PodOptions{HostPID: true}}, []string{"hostPID"},
		`host-PID container "main" in pod default/hostpid rejected: namespace "default" may not use the host's PID namespace ` +
			`(pod has no pid namespace of its own); allowed: kube-system`},
	{"hostIPC", admissionPod{"hostipc", "main", harness.PodOptions{HostIPC: true}}, []string{"hostIPC"},
		`host-IPC container "main" in pod default/hostipc rejected: namespace "default" may not use the host's IPC namespace ` +
			`({hostIPC}); allowed: kube-system`},
	{"hostNetwork", admissionPod{"hostnet", "main", harness.PodOptions{HostNetwork: true}}, []string{"hostNetwork"},
		`host-network container "main" in pod default/hostnet rejected: namespace "default" may not use the host's network namespace ` +
			`({hostNetwork}); allowed: kube-system`},
	{"all four", admissionPod{"node-agent", "agent", harness.PodOptions{Privileged: true, HostPID: true, HostIPC: true, HostNetwork: true}},
		[]string{"privileged", "hostPID", "hostIPC", "hostNetwork"},
		`privileged, host-PID, host-IPC, host-network container "agent" in pod default/node-agent rejected: namespace "default" ` +
			`may not run privileged containers (sysfs mounted rw, all devices allowed, {devices} host devices); allowed: kube-system; ` +
			`and may not use the host's PID namespace (pod has no pid namespace of its own); allowed: kube-system; ` +
			`and may not use the host's IPC namespace ({hostIPC}); allowed: kube-system; ` +
			`and may not use the host's network namespace ({hostNetwork}); allowed: kube-system`},
}

// startAdmissionCoreguard installs coreguard with cfg and metrics on a free
// loopback port. Admission needs no particular topology; two single-thread
// cores keep every container in the shared pool.
func startAdmissionCoreguard(t *testing.T, rt *harness.Runtime, cfg string) *coreguard.Installed {
	t.Helper()
	return startCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, cfg+"\nmetricsAddress: \"127.0.0.1:0\"\n")
}

// wantMessage is the regexp of the whole CRI message for a refusal: the
// runtime's prefix, then coreguard's text with its placeholders filled.
func (x expect) wantMessage(rt *harness.Runtime, text string, devices int) string {
	re := regexp.QuoteMeta(x.refusal + "coreguard: " + text)
	return "^" + strings.NewReplacer(
		regexp.QuoteMeta("{devices}"), fmt.Sprint(devices),
		regexp.QuoteMeta("{hostNetwork}"), x.reason(rt, x.hostNetwork),
		regexp.QuoteMeta("{hostIPC}"), x.reason(rt, x.hostIPC),
	).Replace(re) + "$"
}

// TestAdmissionEnforce: with the default policy (enforce, kube-system
// allowed everything), each kind is refused in "default" with coreguard's
// full message reaching the CRI client, runs in kube-system, and is
// counted; an ordinary pod in default runs. Host network and IPC are
// recognised from both runtimes' signals: no namespace listed
// (containerd), or a path that is the host's namespace (CRI-O).
func TestAdmissionEnforce(t *testing.T) {
	forEachRuntime(t, testAdmissionEnforce)
}

func testAdmissionEnforce(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	cg := startAdmissionCoreguard(t, rt, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("ordinary pod in default runs", func(t *testing.T) {
		_, c, err := ordinaryPod.run(ctx, rt, "default")
		if err != nil {
			t.Fatalf("ordinary pod refused: %v", err)
		}
		wantRunning(ctx, t, c)
	})
	hostDevices := 0
	for _, k := range admissionKinds {
		t.Run(k.name, func(t *testing.T) {
			_, c, err := k.pod.run(ctx, rt, "kube-system")
			if err != nil {
				t.Fatalf("%s in kube-system refused: %v", k.name, err)
			}
			st := wantRunning(ctx, t, c)
			if k.pod.opts.Privileged {
				if st.Spec == nil || st.Spec.Linux == nil || len(st.Spec.Linux.Devices) == 0 {
					t.Fatalf("privileged container in kube-system has no host devices in its spec")
				}
				hostDevices = len(st.Spec.Linux.Devices)
			}
			if k.name == "privileged" {
				recordBypass(x, "allowed", "runs: the namespace is what the sandbox says")
			}
			pod, _, err := k.pod.run(ctx, rt, "default")
			wantRefusalRe(ctx, t, pod, err, x.wantMessage(rt, k.want, hostDevices))
			recordBypass(x, k.name, "refused in CreateContainer")
		})
	}
	t.Run("look-alike namespaces", func(t *testing.T) {
		for _, ns := range []string{"kube-system-evil", "kube-systen"} {
			pod, _, err := debugPod.run(ctx, rt, ns)
			wantRefusalRe(ctx, t, pod, err, "^"+regexp.QuoteMeta(x.refusal+fmt.Sprintf(`coreguard: privileged container "agent" in pod %s/debug rejected: namespace %q`, ns, ns)))
		}
		recordBypass(x, "look-alike", "refused in CreateContainer")
	})

	body := scrape(t, cg)
	want := map[string]int{}
	for _, k := range admissionKinds {
		for _, r := range k.reasons {
			want[r]++
		}
	}
	for r, n := range want {
		wantMetric(t, body, fmt.Sprintf(`coreguard_admission_rejections_total{namespace="default",reason=%q} %d`, r, n))
	}
	// Namespaces with pods have every reason's series, at 0 until a refusal.
	for _, line := range metricLines(body, "coreguard_admission_") {
		if (strings.Contains(line, `namespace="kube-system"`) && !strings.HasSuffix(line, " 0")) ||
			strings.HasPrefix(line, "coreguard_admission_audit_total{") {
			t.Errorf("unexpected admission metric in enforce mode: %s", line)
		}
	}
}

// TestAdmissionAudit: audit mode lets a privileged and a host-PID pod in
// default run, logs what enforce would refuse and counts it.
func TestAdmissionAudit(t *testing.T) {
	forEachRuntime(t, testAdmissionAudit)
}

func testAdmissionAudit(t *testing.T, x expect) {
	rt := startRuntime(t, x)
	cg := startAdmissionCoreguard(t, rt, "admission:\n  mode: audit\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	for _, a := range []admissionPod{debugPod, admissionKinds[1].pod} {
		_, c, err := a.run(ctx, rt, "default")
		if err != nil {
			t.Fatalf("audit mode refused pod %s: %v", a.pod, err)
		}
		wantRunning(ctx, t, c)
	}
	body := scrape(t, cg)
	wantMetric(t, body, `coreguard_admission_audit_total{namespace="default",reason="privileged"} 1`)
	wantMetric(t, body, `coreguard_admission_audit_total{namespace="default",reason="hostPID"} 1`)
	for _, line := range metricLines(body, "coreguard_admission_rejections_total{") {
		t.Errorf("rejection counted in audit mode: %s", line)
	}
	log, err := os.ReadFile(cg.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`audit: would refuse: privileged container \"agent\" in pod default/debug rejected`,
		`audit: would refuse: host-PID container \"main\" in pod default/hostpid rejected`} {
		if !strings.Contains(string(log), w) {
			t.Errorf("coreguard log lacks %q:\n%s", w, cg.LogTail(30))
		}
	}
	if !t.Failed() {
		recordBypass(x, "audit", "runs; logged and counted in `coreguard_admission_audit_total`")
	}
}

// TestAdmissionFailClosed: NRI's failure policy (admission.failClosed, set
// here anyway) is ignored by both runtimes' NRI (containerd 2.4.2: v0.12.3;
// CRI-O 1.34.0: a pre-v0.10 pseudo-version), so failing closed takes the
// runtime's default validator with required_plugins = [coreguard].
//
// containerd enforces it: nothing is created while coreguard is gone,
// except pods carrying the escape-hatch annotation, and except the one
// creation NRI v0.12.3 lets through (see below). CRI-O 1.34.0 has no
// validator and accepts the keys silently: it fails open, every container
// is created while coreguard is gone (the expectation row, not a skip).
// With coreguard connected both refuse what coreguard refuses.
func TestAdmissionFailClosed(t *testing.T) {
	forEachRuntime(t, testAdmissionFailClosed)
}

func testAdmissionFailClosed(t *testing.T, x expect) {
	rt := startRuntimeWith(t, x, harness.Options{RequiredPlugins: []string{"coreguard"}, TolerateMissingPluginsAnnotation: tolerateMissing})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tolerated := admissionPod{pod: "bootstrap", container: "app",
		opts: harness.PodOptions{Annotations: map[string]string{tolerateMissing: "true"}}}
	// withoutCoreguard: what creating a container does while coreguard is
	// not connected: refused by the validator, or (no validator) created.
	withoutCoreguard := func(t *testing.T, pod *harness.Pod, c *harness.Container, err error) {
		t.Helper()
		if x.requiredPlugins {
			wantRefusal(ctx, t, pod, err, x.requiredMissing)
			return
		}
		if err != nil {
			t.Fatalf("%s has no default validator, yet refused the container without coreguard: %v", x.name, err)
		}
		wantRunning(ctx, t, c)
		t.Logf("%s %s: container %q in pod %s created while required plugin coreguard is absent (no default validator: fails open)",
			x.name, x.version, c.Name, pod.Config.Metadata.Name)
	}

	// Bootstrap: before coreguard connects nothing starts, except pods
	// carrying the escape-hatch annotation.
	pod, c, err := ordinaryPod.run(ctx, rt, "default")
	withoutCoreguard(t, pod, c, err)
	_, c, err = tolerated.run(ctx, rt, "default")
	if err != nil {
		t.Fatalf("pod annotated %s=true refused before coreguard started: %v", tolerateMissing, err)
	}
	wantRunning(ctx, t, c)

	// External: the scenario kills coreguard and starts it again while the
	// runtime runs, which only an external plugin can be.
	cg := startExternalCoreguard(t, rt, sysfsgen.TwoCPUsTwoCores, "admission:\n  failClosed: true\n")
	_, c, err = ordinaryPod.run(ctx, rt, "default")
	if err != nil {
		t.Fatalf("ordinary pod refused with coreguard connected: %v", err)
	}
	wantRunning(ctx, t, c)
	// Refused by coreguard; the sandbox stays, as with kubelet, which
	// retries the container in it.
	refusedPod, _, err := debugPod.run(ctx, rt, "default")
	wantRefusal(ctx, t, refusedPod, err, x.refusal+"coreguard: privileged container")

	cg.Kill()
	waitPluginGone(t, rt)

	// KNOWN RUNTIME BUG (containerd 2.4.2, NRI v0.12.3): the first
	// CreateContainer after coreguard's connection closed, with no other
	// NRI request in between, is created unchecked. The dead plugin is
	// still listed when the validator's plugin set is built (closed plugins
	// are pruned only after each request) and its ttrpc.ErrClosed is
	// skipped. kubelet retrying a refused container in its sandbox is
	// exactly that request. NRI v0.12.5 skips closed plugins there.
	// (CRI-O 1.34.0 creates it too, as every container without coreguard.)
	t.Run("known hole: first creation after coreguard dies", func(t *testing.T) {
		c, err := refusedPod.RunContainer(ctx, harness.ContainerOptions{Name: debugPod.container, Privileged: true})
		if err != nil {
			t.Fatalf("the retried privileged container was refused (%v): the runtime now fails closed here; "+
				"assert the refusal instead and drop the caveat from test/e2e/README.md and docs/admission.md", err)
		}
		wantRunning(ctx, t, c)
		t.Logf("privileged container %q in pod default/%s created unchecked right after coreguard died",
			c.Name, refusedPod.Config.Metadata.Name)
	})

	// From then on: containerd creates nothing without coreguard, new
	// pods or retries in an existing sandbox; CRI-O creates everything.
	pod, c, err = ordinaryPod.run(ctx, rt, "default")
	withoutCoreguard(t, pod, c, err)
	pod, c, err = debugPod.run(ctx, rt, "default")
	withoutCoreguard(t, pod, c, err)
	if x.requiredPlugins {
		_, err = pod.RunContainer(ctx, harness.ContainerOptions{Name: debugPod.container, Privileged: true})
		wantRefusal(ctx, t, pod, err, x.requiredMissing)
	} else {
		// A new privileged pod for the check below: the one above has
		// its container.
		pod, err = rt.RunPod(ctx, harness.PodOptions{Name: "debug-2", Privileged: true})
		if err != nil {
			t.Fatal(err)
		}
	}

	if err := cg.Restart(); err != nil {
		t.Fatal(err)
	}
	_, c, err = ordinaryPod.run(ctx, rt, "default")
	if err != nil {
		t.Fatalf("ordinary pod refused after coreguard came back: %v", err)
	}
	wantRunning(ctx, t, c)
	_, err = pod.RunContainer(ctx, harness.ContainerOptions{Name: debugPod.container, Privileged: true})
	wantRefusal(ctx, t, pod, err, x.refusal+"coreguard: privileged container")
	if x.requiredPlugins {
		recordBypass(x, "killed-required", "refused by the runtime's validator, but for the first creation after coreguard dies (NRI v0.12.3)")
	} else {
		recordBypass(x, "killed-required", "runs: v1.34.0 has no validator and ignores the keys")
	}
}

// waitPluginGone waits until the runtime has seen coreguard's connection
// close.
func waitPluginGone(t *testing.T, rt *harness.Runtime) {
	t.Helper()
	deadline := time.Now().Add(settle)
	// Both runtimes' NRI log it naming the plugin by index and name.
	for !strings.Contains(rt.LogTail(200), `connection to plugin \"10-coreguard\" closed`) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log coreguard's connection closing within %v", rt.Kind, settle)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantRunning checks the container runs and returns its verbose status.
func wantRunning(ctx context.Context, t *testing.T, c *harness.Container) *harness.ContainerStatus {
	t.Helper()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.CRI.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container %s of pod %s: state %s, want running", c.Name, c.Pod.Config.Metadata.Name, st.CRI.GetState())
	}
	return st
}

// wantRefusal checks that creating the container failed with a gRPC error
// whose message, as the CRI client (kubelet) gets it, is want (or starts
// with it when want ends in a prefix of coreguard's text), and that the
// refused container was not left behind in the pod.
func wantRefusal(ctx context.Context, t *testing.T, pod *harness.Pod, err error, want string) {
	t.Helper()
	re := "^" + regexp.QuoteMeta(want) + "$"
	if strings.HasSuffix(want, " container") {
		re = "^" + regexp.QuoteMeta(want)
	}
	wantRefusalRe(ctx, t, pod, err, re)
}

// wantRefusalRe is wantRefusal with a regexp for the whole message.
func wantRefusalRe(ctx context.Context, t *testing.T, pod *harness.Pod, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("container created; want it refused with %s", want)
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		t.Fatalf("error is not a gRPC status: %v", err)
	}
	msg := se.GRPCStatus().Message()
	if !regexp.MustCompile(want).MatchString(msg) {
		t.Fatalf("CRI error message\n  %s\nwant (regexp)\n  %s", msg, want)
	}
	t.Logf("refused as expected: %s", msg)
	if pod == nil {
		t.Fatal("RunPodSandbox failed; the container was never tried")
	}
	list, lerr := pod.ListContainers(ctx)
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(list) != 0 {
		t.Errorf("refused container left in pod %s: %v", pod.Config.Metadata.Name, list)
	}
}

// instance is a running coreguard, pre-installed (*coreguard.Installed) or
// external (*coreguard.Process).
type instance interface {
	LogFile() string
	LogTail(n int) string
	MetricsURL() (string, error)
}

// scrape fetches coreguard's /metrics.
func scrape(t *testing.T, cg instance) string {
	t.Helper()
	url, err := cg.MetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

func metricLines(body, prefix string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func wantMetric(t *testing.T, body, line string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return
		}
	}
	name, _, _ := strings.Cut(line, "{")
	t.Errorf("metrics lack\n  %s\nhave\n  %s", line, strings.Join(metricLines(body, name), "\n  "))
}
