package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/coreguard/coreguard/config"
)

// chart is the Helm chart's directory, relative to this package.
const chart = "helm/coreguard"

// helmVersion is the helm hack/install-tools.sh builds.
const helmVersion = "v4.3.2"

// helmBinary finds helm: $COREGUARD_HELM, else hack/install-tools.sh's
// build. Without it the chart tests skip, or fail when
// COREGUARD_REQUIRE_TOOLS=1 (make check).
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("COREGUARD_HELM")
	if bin == "" {
		cache := os.Getenv("COREGUARD_CACHE")
		if cache == "" {
			cache = "/var/cache/coreguard"
		}
		bin = filepath.Join(cache, "helm-"+helmVersion, "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("no helm at %s (bash hack/install-tools.sh builds it): %v", bin, err)
		if os.Getenv("COREGUARD_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// helm runs the real helm and returns its stdout, or its error with stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	// Nothing of the user's helm set-up (repositories, plugins, caches).
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+home, "HELM_CACHE_HOME="+home, "HELM_DATA_HOME="+home)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// rendered are the chart's objects, decoded strictly into their types.
type rendered struct {
	daemonSet  *appsv1.DaemonSet
	configMap  *corev1.ConfigMap
	podMonitor map[string]any
}

// render runs helm template as the docs do (release coreguard in
// kube-system) with extra arguments, and decodes what it writes.
func render(t *testing.T, extra ...string) (rendered, error) {
	t.Helper()
	out, err := helm(t, append([]string{"template", "coreguard", chart, "--namespace", "kube-system"}, extra...)...)
	if err != nil {
		return rendered{}, err
	}
	var r rendered
	for _, doc := range strings.Split(out, "\n---\n") {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered document: %v\n%s", err, doc)
		}
		var into any
		switch head.Kind {
		case "":
			continue
		case "DaemonSet":
			r.daemonSet = &appsv1.DaemonSet{}
			into = r.daemonSet
		case "ConfigMap":
			r.configMap = &corev1.ConfigMap{}
			into = r.configMap
		case "PodMonitor":
			into = &r.podMonitor
		default:
			t.Fatalf("the chart renders a %s, which this test does not know", head.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("rendered %s does not decode strictly: %v", head.Kind, err)
		}
	}
	if r.daemonSet == nil || r.configMap == nil {
		t.Fatalf("the chart rendered no DaemonSet or no ConfigMap:\n%s", out)
	}
	return r, nil
}

func mustRender(t *testing.T, extra ...string) rendered {
	t.Helper()
	r, err := render(t, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestChartLint(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", chart); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestChartMatchesBase: with its defaults, the chart renders what the
// kustomize base holds, but for Helm's own labels and the checksum that
// restarts pods on a configuration change: the two cannot drift.
func TestChartMatchesBase(t *testing.T) {
	r := mustRender(t)
	got, want := r.daemonSet.DeepCopy(), daemonSet(t)
	helmOnly := []string{"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"}
	for _, m := range []map[string]string{got.Labels, got.Spec.Template.Labels} {
		for _, k := range helmOnly {
			delete(m, k)
		}
	}
	delete(got.Spec.Template.Annotations, "checksum/config")
	if !reflect.DeepEqual(got, want) {
		g, _ := yaml.Marshal(got)
		w, _ := yaml.Marshal(want)
		t.Errorf("the chart's DaemonSet differs from deploy/%s/daemonset.yaml:\n--- chart\n%s\n--- base\n%s", base, g, w)
	}
	if r.configMap.Name != configMap(t).Name || r.configMap.Namespace != configMap(t).Namespace {
		t.Errorf("ConfigMap %s/%s, base %s/%s", r.configMap.Namespace, r.configMap.Name, configMap(t).Namespace, configMap(t).Name)
	}
	gotCfg, err := config.Parse([]byte(r.configMap.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the chart's configuration is refused: %v", err)
	}
	wantCfg, err := config.Parse([]byte(configMap(t).Data["config.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := asJSON(t, gotCfg), asJSON(t, wantCfg); g != w {
		t.Errorf("the chart's configuration differs from the base's:\n chart %s\n  base %s", g, w)
	}
}

// TestChartValues: what each value an admin sets does to the objects,
// and the values the chart refuses, with their message.
func TestChartValues(t *testing.T) {
	tests := []struct {
		name  string
		set   []string
		check func(t *testing.T, r rendered)
		fails string
	}{
		{"metrics on the node's network", []string{"--set", "metrics.enabled=true"}, func(t *testing.T, r rendered) {
			c := r.daemonSet.Spec.Template.Spec.Containers[0]
			if !slices.Contains(c.Args, "--metrics-address=:9110") || len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9110 {
				t.Errorf("args %q ports %v", c.Args, c.Ports)
			}
			if r.podMonitor != nil {
				t.Error("a PodMonitor without asking")
			}
		}, ""},
		{"PodMonitor", []string{"--set", "metrics.enabled=true", "--set", "metrics.podMonitor.enabled=true"}, func(t *testing.T, r rendered) {
			if r.podMonitor["apiVersion"] != "monitoring.coreos.com/v1" || r.podMonitor["kind"] != "PodMonitor" {
				t.Errorf("PodMonitor %v", r.podMonitor)
			}
			// coreguard's own namespace/pod/container labels must win over
			// the target's, or the throttling alerts' join finds nothing.
			endpoints, _ := r.podMonitor["spec"].(map[string]any)["podMetricsEndpoints"].([]any)
			if len(endpoints) != 1 || endpoints[0].(map[string]any)["honorLabels"] != true {
				t.Errorf("PodMonitor endpoints %v, want one with honorLabels: true", endpoints)
			}
		}, ""},
		{"PodMonitor without metrics", []string{"--set", "metrics.podMonitor.enabled=true"}, nil,
			"metrics.podMonitor.enabled needs metrics.enabled"},
		{"state dir moved: mounted at its host path", []string{"--set", "hostPaths.stateDir=/data/coreguard"}, func(t *testing.T, r rendered) {
			spec := r.daemonSet.Spec.Template.Spec
			if !slices.Contains(spec.Containers[0].Args, "--state-dir=/data/coreguard") ||
				!slices.ContainsFunc(spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "state" && m.MountPath == "/data/coreguard" }) ||
				!slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "state" && v.HostPath.Path == "/data/coreguard" }) {
				t.Errorf("state dir not moved everywhere: %v", spec)
			}
		}, ""},
		{"kubelet root dir moved: mount and configuration", []string{"--set", "hostPaths.kubeletRootDir=/data/kubelet"}, func(t *testing.T, r rendered) {
			cfg, err := config.Parse([]byte(r.configMap.Data["config.yaml"]))
			if err != nil || cfg.KubeletRootDir != "/data/kubelet" {
				t.Errorf("kubeletRootDir %q (%v)", cfg.KubeletRootDir, err)
			}
		}, ""},
		{"configuration values", []string{"--set", "config.admission.mode=audit", "--set", "config.reservedSystemCPUs=0\\,40"}, func(t *testing.T, r rendered) {
			cfg, err := config.Parse([]byte(r.configMap.Data["config.yaml"]))
			if err != nil || cfg.Admission.Mode != config.AdmissionAudit || cfg.Reserved().String() != "0,40" {
				t.Errorf("config %+v (%v)", cfg, err)
			}
		}, ""},
		{"image", []string{"--set", "image.repository=registry.local/coreguard", "--set", "image.tag=v9"}, func(t *testing.T, r rendered) {
			if img := r.daemonSet.Spec.Template.Spec.Containers[0].Image; img != "registry.local/coreguard:v9" {
				t.Errorf("image %s", img)
			}
		}, ""},
		{"NRI left as it is by default", nil, func(t *testing.T, r rendered) {
			if ic := r.daemonSet.Spec.Template.Spec.InitContainers; len(ic) != 0 {
				t.Errorf("init containers without asking: %v", ic)
			}
		}, ""},
		{"NRI turned on in containerd's config", []string{"--set", "nri.patchRuntimeConfig=true", "--set", "hostPaths.dbusSocket=/var/run/dbus/system_bus_socket"}, func(t *testing.T, r rendered) {
			checkEnableNRI(t, r, []string{"--runtime=containerd", "--containerd-config=/host/runtime-config/config.toml"}, "/etc/containerd", "/var/run/dbus/system_bus_socket")
		}, ""},
		{"NRI turned on by a CRI-O drop-in", []string{"--set", "nri.patchRuntimeConfig=true", "--set", "nri.runtime=crio", "--set", "hostPaths.crioConfigDir=/etc/crio/other.d"}, func(t *testing.T, r rendered) {
			checkEnableNRI(t, r, []string{"--runtime=crio", "--crio-config-dir=/host/runtime-config"}, "/etc/crio/other.d", "/run/dbus/system_bus_socket")
		}, ""},
		{"NRI on an unknown runtime", []string{"--set", "nri.patchRuntimeConfig=true", "--set", "nri.runtime=docker"}, nil,
			`nri.runtime "docker": want containerd or crio`},
		{"a namespace coreguard's own admission refuses", []string{"--namespace", "coreguard-system"}, nil,
			`config.admission.hostPID [kube-system] does not allow namespace "coreguard-system"`},
		{"a namespace allowed", []string{"--namespace", "coreguard-system", "--set", "config.admission.hostPID={kube-system,coreguard-system}",
			"--set", "config.admission.hostIPC={coreguard-system}", "--set", "config.admission.hostNetwork={coreguard-*}"}, func(t *testing.T, r rendered) {
			if r.daemonSet.Namespace != "coreguard-system" {
				t.Errorf("namespace %s", r.daemonSet.Namespace)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := render(t, tt.set...)
			if tt.fails != "" {
				if err == nil || !strings.Contains(err.Error(), tt.fails) {
					t.Fatalf("error %v, want one saying %q", err, tt.fails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, r)
		})
	}
}

// checkEnableNRI: the enable-nri init container runs coreguard's image with
// args, the runtime's config dir and the D-Bus socket mounted from the
// host, and the same locked-down security context as coreguard itself.
func checkEnableNRI(t *testing.T, r rendered, args []string, configDir, dbus string) {
	t.Helper()
	spec := r.daemonSet.Spec.Template.Spec
	if len(spec.InitContainers) != 1 {
		t.Fatalf("init containers %v, want enable-nri", spec.InitContainers)
	}
	ic, main := spec.InitContainers[0], spec.Containers[0]
	if ic.Name != "enable-nri" || ic.Image != main.Image || len(ic.Args) == 0 || ic.Args[0] != "enable-nri" {
		t.Errorf("init container %s %s %q", ic.Name, ic.Image, ic.Args)
	}
	for _, a := range append(args, "--nri-socket=/var/run/nri/nri.sock") {
		if !slices.Contains(ic.Args, a) {
			t.Errorf("init container args %q lack %s", ic.Args, a)
		}
	}
	if !reflect.DeepEqual(ic.SecurityContext, main.SecurityContext) {
		t.Errorf("init container security context %+v, coreguard's %+v", ic.SecurityContext, main.SecurityContext)
	}
	hostPath := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPath[v.Name] = v.HostPath.Path
		}
	}
	mounts := map[string]string{}
	for _, m := range ic.VolumeMounts {
		mounts[m.MountPath] = hostPath[m.Name]
	}
	want := map[string]string{"/var/run/nri": "/var/run/nri", "/host/runtime-config": configDir, "/host/dbus/system_bus_socket": dbus}
	if !reflect.DeepEqual(mounts, want) {
		t.Errorf("init container mounts (path: host path) %v, want %v", mounts, want)
	}
	if len(ic.Env) != 1 || ic.Env[0].Name != "DBUS_SYSTEM_BUS_ADDRESS" || ic.Env[0].Value != "unix:path=/host/dbus/system_bus_socket" {
		t.Errorf("init container env %v", ic.Env)
	}
}

// TestChartVersion: the chart's appVersion is the image tag the Makefile
// builds, and its version the same without the "v".
func TestChartVersion(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		APIVersion  string   `json:"apiVersion"`
		Name        string   `json:"name"`
		Version     string   `json:"version"`
		AppVersion  string   `json:"appVersion"`
		Description string   `json:"description"`
		Type        string   `json:"type"`
		Home        string   `json:"home"`
		Keywords    []string `json:"keywords"`
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatal(err)
	}
	tag := makeVars(t)["TAG"]
	if c.APIVersion != "v2" || c.Name != "coreguard" || c.AppVersion != tag || "v"+c.Version != tag {
		t.Errorf("Chart.yaml: apiVersion %s, name %s, version %s, appVersion %s; the Makefile's TAG is %s", c.APIVersion, c.Name, c.Version, c.AppVersion, tag)
	}
}

// TestPodSecurity: the chart's pod, judged by Kubernetes' own Pod Security
// checks (k8s.io/pod-security-admission, as the API server runs them),
// passes the level docs/install.md states, privileged, and fails baseline
// for exactly the reasons it gives: the host's namespaces, hostPath
// volumes, and probes aimed at the node's loopback.
func TestPodSecurity(t *testing.T) {
	ds := mustRender(t).daemonSet
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	judge := func(level psaapi.Level) psapolicy.AggregateCheckResult {
		return psapolicy.AggregateCheckResults(eval.EvaluatePod(psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()},
			&ds.Spec.Template.ObjectMeta, &ds.Spec.Template.Spec))
	}
	if r := judge(psaapi.LevelPrivileged); !r.Allowed {
		t.Errorf("privileged: refused for %s", r.ForbiddenReason())
	}
	r := judge(psaapi.LevelBaseline)
	want := []string{"host namespaces", "hostPath volumes", "probe or lifecycle host"}
	if r.Allowed || !slices.Equal(r.ForbiddenReasons, want) {
		t.Errorf("baseline: allowed %v, forbidden for %q; docs/install.md says %q", r.Allowed, r.ForbiddenReasons, want)
	}
}
