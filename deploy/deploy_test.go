package deploy

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/pelletier/go-toml/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/plugin/pinning"
)

const base = "kubernetes/base"

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(Files, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// strict decodes YAML into v, refusing fields v's type does not have (a
// typo in a manifest is an error here, not a field the API server drops).
func strict(t *testing.T, name string, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(read(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	strict(t, base+"/daemonset.yaml", &ds)
	return &ds
}

func configMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	strict(t, base+"/configmap.yaml", &cm)
	return &cm
}

// makeVars reads `NAME ?= value` assignments from the Makefile.
func makeVars(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+) \?= (.*)$`).FindAllStringSubmatch(string(b), -1) {
		vars[m[1]] = strings.TrimSpace(m[2])
	}
	return vars
}

// args maps the container's --flag=value arguments after the subcommand.
func args(t *testing.T, c corev1.Container) (string, map[string]string) {
	t.Helper()
	if len(c.Command) != 0 || len(c.Args) == 0 {
		t.Fatalf("container %s: command %q args %q; want the image's entrypoint and a subcommand", c.Name, c.Command, c.Args)
	}
	flags := map[string]string{}
	for _, a := range c.Args[1:] {
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || !strings.HasPrefix(a, "--") {
			t.Fatalf("argument %q is not --flag=value", a)
		}
		flags[k] = v
	}
	return c.Args[0], flags
}

func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Namespace  string   `json:"namespace"`
		Resources  []string `json:"resources"`
	}
	strict(t, base+"/kustomization.yaml", &k)
	entries, err := fs.ReadDir(Files, base)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range entries {
		if e.Name() != "kustomization.yaml" && strings.HasSuffix(e.Name(), ".yaml") {
			want = append(want, e.Name())
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if k.Kind != "Kustomization" || !slices.Equal(got, want) {
		t.Errorf("kustomization: kind %q resources %v, want every manifest %v", k.Kind, got, want)
	}
	if ns := daemonSet(t).Namespace; k.Namespace != ns || configMap(t).Namespace != ns {
		t.Errorf("namespaces: kustomization %q, DaemonSet %q, ConfigMap %q", k.Namespace, ns, configMap(t).Namespace)
	}
}

func TestDaemonSet(t *testing.T) {
	ds := daemonSet(t)
	spec := ds.Spec.Template.Spec
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Fatalf("%s %s", ds.APIVersion, ds.Kind)
	}
	sel := ds.Spec.Selector.MatchLabels
	for k, v := range sel {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod template's labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	if len(sel) == 0 {
		t.Error("empty selector")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	// Every node: one toleration of every taint.
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("tolerations %+v do not tolerate every taint", spec.Tolerations)
	}
	// Every Linux node; a Windows node has no NRI.
	if !maps.Equal(spec.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}) || spec.Affinity != nil {
		t.Errorf("node selector %v / affinity %v: want kubernetes.io/os=linux alone, so no Linux node is left unguarded", spec.NodeSelector, spec.Affinity)
	}
	// Host namespaces: admission compares pod namespaces with its own.
	if !spec.HostPID || !spec.HostIPC || !spec.HostNetwork {
		t.Errorf("hostPID %v hostIPC %v hostNetwork %v; want all three (docs/install.md)", spec.HostPID, spec.HostIPC, spec.HostNetwork)
	}
	if spec.HostNetwork && spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q with hostNetwork", spec.DNSPolicy)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; coreguard never calls the API server")
	}
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%d containers, %d init containers; want one", len(spec.Containers), len(spec.InitContainers))
	}
	ann := ds.Spec.Template.Annotations
	if ann[pinning.AnnotationExclusive] != "false" {
		t.Errorf("pod annotation %s = %q; coreguard must never pin itself", pinning.AnnotationExclusive, ann[pinning.AnnotationExclusive])
	}
}

func TestDaemonSetContainer(t *testing.T) {
	ds := daemonSet(t)
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]

	vars := makeVars(t)
	if want := vars["IMAGE"] + ":" + vars["TAG"]; c.Image != want || vars["IMAGE"] == "" || vars["TAG"] == "" {
		t.Errorf("image %q, Makefile IMAGE:TAG %q", c.Image, want)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("imagePullPolicy %q: kind and air-gapped nodes load the image (make image-tar)", c.ImagePullPolicy)
	}

	// Resources: never Guaranteed (coreguard would pin itself), never a CPU
	// limit (CFS quota would throttle it on the container-creation path).
	r := c.Resources
	if _, ok := r.Limits[corev1.ResourceCPU]; ok {
		t.Errorf("CPU limit %v: CFS quota could throttle coreguard", r.Limits.Cpu())
	}
	cpu := r.Requests[corev1.ResourceCPU]
	if cpu.IsZero() || cpu.MilliValue() >= 1000 {
		t.Errorf("CPU request %v; want a fraction of a CPU", cpu.String())
	}
	mem, memLimit := r.Requests[corev1.ResourceMemory], r.Limits[corev1.ResourceMemory]
	if mem.IsZero() || memLimit.IsZero() || memLimit.Cmp(mem) < 0 {
		t.Errorf("memory request %v limit %v", mem.String(), memLimit.String())
	}
	if qos := qosClass(c); qos != corev1.PodQOSBurstable {
		t.Errorf("QoS %s; want Burstable", qos)
	}

	// Privilege: root, nothing else.
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("no securityContext")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation not false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root file system writable")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("runAsUser is not 0 (cgroup files and the NRI socket are root's)")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v; want drop [ALL], add none", sc.Capabilities)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v", sc.SeccompProfile)
	}
	// Flags and the mounts they point into.
	sub, flags := args(t, c)
	if sub != "run" {
		t.Errorf("subcommand %q", sub)
	}
	known := []string{"config", "socket", "sysfs-root", "cgroup-root", "log-level", "log-format", "metrics-address", "health-address", "name", "index", "state-dir"}
	for k := range flags {
		if !slices.Contains(known, k) {
			t.Errorf("unknown flag --%s", k)
		}
	}
	if flags["socket"] != plugin.DefaultSocket {
		t.Errorf("--socket %q; want the runtimes' default %s", flags["socket"], plugin.DefaultSocket)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	hostPaths := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range spec.Volumes {
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("volume %s is not mounted", v.Name)
		}
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath
		}
	}
	type want struct {
		host, mountPath string
		readOnly        bool
	}
	wants := map[string]want{
		"nri":                {"/var/run/nri", path.Dir(flags["socket"]), false},
		"sys-devices-system": {"/sys/devices/system", flags["sysfs-root"] + "/devices/system", true},
		"cgroup":             {"/sys/fs/cgroup", flags["cgroup-root"], false},
		"kubelet":            {config.DefaultKubeletRootDir, config.DefaultKubeletRootDir, true},
		"state":              {"/var/lib/coreguard", flags["state-dir"], false},
		"netns":              {"/var/run/netns", "/var/run/netns", true},
		"ipcns":              {"/var/run/ipcns", "/var/run/ipcns", true},
	}
	for name, hp := range hostPaths {
		w, ok := wants[name]
		if !ok {
			t.Errorf("hostPath %s (%s) is not one coreguard needs", name, hp.Path)
			continue
		}
		m := mounts[name]
		if hp.Path != w.host || m.MountPath != w.mountPath || m.ReadOnly != w.readOnly {
			t.Errorf("hostPath %s: %s at %s (read-only %v); want %s at %s (read-only %v)",
				name, hp.Path, m.MountPath, m.ReadOnly, w.host, w.mountPath, w.readOnly)
		}
		if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
			t.Errorf("%s: bidirectional propagation needs a privileged container", name)
		}
		delete(wants, name)
	}
	for name := range wants {
		t.Errorf("hostPath %s missing", name)
	}
	// Probes: coreguard's own /healthz and /readyz, on the address the
	// flag gives, which is the node's loopback (nothing else listens).
	host, port, err := net.SplitHostPort(flags["health-address"])
	if err != nil || host != "127.0.0.1" {
		t.Errorf("--health-address %q: want 127.0.0.1:PORT", flags["health-address"])
	}
	for _, p := range []struct {
		name, path string
		probe      *corev1.Probe
	}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s probe", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Host != host || g.Port.String() != port || g.Path != p.path {
			t.Errorf("%s probe GET %s:%s%s; want %s:%s%s", p.name, g.Host, g.Port.String(), g.Path, host, port, p.path)
		}
	}
	if len(c.Ports) != 0 {
		t.Errorf("ports %v: coreguard listens on the node's loopback only", c.Ports)
	}
	// NRI off on a node: the pod starts, logs why and stays unready.
	if hp := hostPaths["nri"]; hp == nil || hp.Type == nil || *hp.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("nri hostPath %+v: want type DirectoryOrCreate", hp)
	}
	// kubelet's root dir holds every pod's volumes, secrets among them:
	// read-only all the way down where the runtime can.
	if m := mounts["kubelet"]; m.RecursiveReadOnly == nil || *m.RecursiveReadOnly != corev1.RecursiveReadOnlyIfPossible {
		t.Errorf("kubelet mount: recursiveReadOnly %v, want IfPossible", m.RecursiveReadOnly)
	}

	// The configuration: the ConfigMap, where --config says.
	cm := configMap(t)
	m, ok := mounts["config"]
	if !ok || !m.ReadOnly || flags["config"] != m.MountPath+"/config.yaml" {
		t.Errorf("--config %q, config mount %+v", flags["config"], m)
	}
	for _, v := range spec.Volumes {
		if v.Name == "config" && (v.ConfigMap == nil || v.ConfigMap.Name != cm.Name) {
			t.Errorf("config volume %+v is not ConfigMap %s", v.VolumeSource, cm.Name)
		}
	}
}

// qosClass is Kubernetes' rule for a one-container pod.
func qosClass(c corev1.Container) corev1.PodQOSClass {
	r := c.Resources
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		l, ok := r.Limits[res]
		if !ok {
			return corev1.PodQOSBurstable
		}
		if q, ok := r.Requests[res]; ok && q.Cmp(l) != 0 {
			return corev1.PodQOSBurstable
		}
	}
	return corev1.PodQOSGuaranteed
}

func TestConfigMap(t *testing.T) {
	cm := configMap(t)
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || len(cm.Data) != 1 {
		t.Fatalf("%s %s with %d keys", cm.APIVersion, cm.Kind, len(cm.Data))
	}
	text := cm.Data["config.yaml"]
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("the real loader refuses the ConfigMap's config: %v", err)
	}
	// The shipped file writes the defaults out; it must not change them.
	if got, want := asJSON(t, cfg), asJSON(t, config.Default()); got != want {
		t.Errorf("ConfigMap config differs from the defaults:\n got %s\nwant %s", got, want)
	}
	// Through a file, as coreguard run --config reads it.
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(file); err != nil {
		t.Fatal(err)
	}
	// coreguard's own pod must pass its own admission.
	ds := daemonSet(t)
	spec := ds.Spec.Template.Spec
	for kind, on := range map[string]bool{"hostPID": spec.HostPID, "hostIPC": spec.HostIPC, "hostNetwork": spec.HostNetwork} {
		if on && !cfg.Admission.Allows(kind, ds.Namespace) {
			t.Errorf("admission.%s does not allow %s, where coreguard's own DaemonSet runs", kind, ds.Namespace)
		}
	}
	// Every field is written out, so admins see what they can set.
	for _, f := range configFields(reflect.TypeFor[config.Config](), "") {
		key := f[strings.LastIndex(f, ".")+1:]
		if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `:`).MatchString(text) {
			t.Errorf("the ConfigMap's config does not write out %s", f)
		}
	}
	// The pre-installed plugin ships the same configuration.
	if pre := string(read(t, "nri/10-coreguard.conf")); pre != text {
		t.Errorf("nri/10-coreguard.conf differs from the ConfigMap's config.yaml")
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The runtimes' NRI settings, with the key names of containerd 2.4
// (internal/nri/config.go), 1.7 and CRI-O 1.34 (internal/config/nri):
// decoding refuses any other key, so a misspelt key fails here.
type containerdNRI struct {
	Disable                   *bool  `toml:"disable"`
	DisableConnections        *bool  `toml:"disable_connections"`
	SocketPath                string `toml:"socket_path"`
	PluginPath                string `toml:"plugin_path"`
	PluginConfigPath          string `toml:"plugin_config_path"`
	PluginRegistrationTimeout string `toml:"plugin_registration_timeout"`
	PluginRequestTimeout      string `toml:"plugin_request_timeout"`
	DefaultValidator          *struct {
		Enable                           bool     `toml:"enable"`
		RequiredPlugins                  []string `toml:"required_plugins"`
		TolerateMissingPluginsAnnotation string   `toml:"tolerate_missing_plugins_annotation"`
	} `toml:"default_validator"`
}

type containerdConfig struct {
	Version int `toml:"version"`
	Plugins struct {
		NRI containerdNRI `toml:"io.containerd.nri.v1.nri"`
	} `toml:"plugins"`
}

type crioConfig struct {
	Crio struct {
		NRI struct {
			EnableNRI                 *bool  `toml:"enable_nri"`
			Listen                    string `toml:"nri_listen"`
			PluginDir                 string `toml:"nri_plugin_dir"`
			PluginConfigDir           string `toml:"nri_plugin_config_dir"`
			DisableConnections        *bool  `toml:"nri_disable_connections"`
			PluginRegistrationTimeout string `toml:"nri_plugin_registration_timeout"`
			PluginRequestTimeout      string `toml:"nri_plugin_request_timeout"`
			DefaultValidator          *struct {
				Enable                    bool     `toml:"nri_enable_default_validator"`
				RequiredPlugins           []string `toml:"nri_validator_required_plugins"`
				TolerateMissingAnnotation string   `toml:"nri_validator_tolerate_missing_plugins_annotation"`
			} `toml:"default_validator"`
		} `toml:"nri"`
	} `toml:"crio"`
}

func decodeTOML(t *testing.T, name string, data []byte, v any) {
	t.Helper()
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var strictErr *toml.StrictMissingError
		if errors.As(err, &strictErr) {
			t.Fatalf("%s: unknown keys:\n%s", name, strictErr.String())
		}
		t.Fatalf("%s: %v", name, err)
	}
}

// checkNRI checks a containerd NRI section: on, socket where the DaemonSet
// mounts it, plugin dirs where `make install` puts coreguard.
func checkNRI(t *testing.T, name string, n containerdNRI, full bool) {
	t.Helper()
	if n.Disable == nil || *n.Disable {
		t.Errorf("%s: NRI not enabled (disable = %v)", name, n.Disable)
	}
	if n.DisableConnections == nil || *n.DisableConnections {
		t.Errorf("%s: external plugins (the DaemonSet) not accepted", name)
	}
	if n.SocketPath != plugin.DefaultSocket {
		t.Errorf("%s: socket_path %q, want %s", name, n.SocketPath, plugin.DefaultSocket)
	}
	if !full {
		return
	}
	vars := makeVars(t)
	if n.PluginPath != vars["NRI_PLUGIN_DIR"] || n.PluginConfigPath != vars["NRI_CONF_DIR"] {
		t.Errorf("%s: plugin dirs %s, %s; make install uses %s, %s", name, n.PluginPath, n.PluginConfigPath, vars["NRI_PLUGIN_DIR"], vars["NRI_CONF_DIR"])
	}
	if n.PluginRequestTimeout == "" || n.PluginRegistrationTimeout == "" {
		t.Errorf("%s: timeouts not written out", name)
	}
}

func TestContainerdSnippets(t *testing.T) {
	for file, version := range map[string]int{"containerd/nri-1.7.toml": 2, "containerd/nri-2.x.toml": 3} {
		var c containerdConfig
		decodeTOML(t, file, read(t, file), &c)
		if c.Version != version {
			t.Errorf("%s: config version %d, want %d", file, c.Version, version)
		}
		checkNRI(t, file, c.Plugins.NRI, true)
		if c.Plugins.NRI.DefaultValidator != nil {
			t.Errorf("%s: the default validator belongs in nri-required-2.x.toml", file)
		}
	}
	var req containerdConfig
	decodeTOML(t, "nri-required-2.x.toml", read(t, "containerd/nri-required-2.x.toml"), &req)
	v := req.Plugins.NRI.DefaultValidator
	if v == nil || !v.Enable || !slices.Equal(v.RequiredPlugins, []string{plugin.DefaultName}) {
		t.Fatalf("nri-required-2.x.toml: default validator %+v; want enabled, requiring %s", v, plugin.DefaultName)
	}
	checkToleration(t, "nri-required-2.x.toml", v.TolerateMissingPluginsAnnotation)
}

// checkToleration: the DaemonSet's pod carries the annotation the
// validator config names, so coreguard itself starts under required_plugins.
func checkToleration(t *testing.T, file, key string) {
	t.Helper()
	ann := daemonSet(t).Spec.Template.Annotations
	if key == "" || ann[key] != "true" {
		t.Errorf("%s: tolerate-missing annotation %q; the DaemonSet's pod has %v", file, key, ann)
	}
}

func TestCRIOSnippets(t *testing.T) {
	var c crioConfig
	decodeTOML(t, "crio/10-nri.conf", read(t, "crio/10-nri.conf"), &c)
	n := c.Crio.NRI
	vars := makeVars(t)
	if n.EnableNRI == nil || !*n.EnableNRI || n.Listen != plugin.DefaultSocket || n.DisableConnections == nil || *n.DisableConnections ||
		n.PluginDir != vars["NRI_PLUGIN_DIR"] || n.PluginConfigDir != vars["NRI_CONF_DIR"] || n.DefaultValidator != nil {
		t.Errorf("crio/10-nri.conf: %+v", n)
	}
	var r crioConfig
	decodeTOML(t, "crio/11-nri-required.conf", read(t, "crio/11-nri-required.conf"), &r)
	v := r.Crio.NRI.DefaultValidator
	if v == nil || !v.Enable || !slices.Equal(v.RequiredPlugins, []string{plugin.DefaultName}) {
		t.Fatalf("crio/11-nri-required.conf: %+v", v)
	}
	checkToleration(t, "crio/11-nri-required.conf", v.TolerateMissingAnnotation)
}

func TestKindCluster(t *testing.T) {
	var k struct {
		Kind                    string   `json:"kind"`
		APIVersion              string   `json:"apiVersion"`
		ContainerdConfigPatches []string `json:"containerdConfigPatches"`
		Nodes                   []struct {
			Role string `json:"role"`
		} `json:"nodes"`
	}
	strict(t, "kind/cluster.yaml", &k)
	if k.Kind != "Cluster" || k.APIVersion != "kind.x-k8s.io/v1alpha4" || len(k.ContainerdConfigPatches) != 1 || len(k.Nodes) == 0 {
		t.Fatalf("kind config %+v", k)
	}
	var c containerdConfig
	decodeTOML(t, "kind patch", []byte(k.ContainerdConfigPatches[0]), &c)
	checkNRI(t, "kind patch", c.Plugins.NRI, false)
}

// TestDockerfileMatchesImageTar reads the Dockerfile's final stage and checks
// that `make image-tar` (deploy.Image) builds the same image.
func TestDockerfileMatchesImageTar(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var final []string // instructions of the last stage
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			final = nil
		}
		final = append(final, line)
	}
	if len(final) == 0 || final[0] != "FROM scratch" {
		t.Fatalf("final stage %q; want FROM scratch", final)
	}
	get := func(instr string) []string {
		var out []string
		for _, l := range final {
			if rest, ok := strings.CutPrefix(l, instr+" "); ok {
				out = append(out, strings.TrimSpace(rest))
			}
		}
		return out
	}
	jsonList := func(s string) []string {
		var l []string
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return l
	}
	if e := get("ENTRYPOINT"); len(e) != 1 || !slices.Equal(jsonList(e[0]), Entrypoint) {
		t.Errorf("Dockerfile ENTRYPOINT %q, image-tar %q", e, Entrypoint)
	}
	if c := get("CMD"); len(c) != 1 || !slices.Equal(jsonList(c[0]), Cmd) {
		t.Errorf("Dockerfile CMD %q, image-tar %q", c, Cmd)
	}
	if u := get("USER"); len(u) != 1 || u[0] != User {
		t.Errorf("Dockerfile USER %q, image-tar %q", u, User)
	}
	copies := get("COPY")
	if len(copies) != 1 || !strings.HasSuffix(copies[0], " "+BinaryPath) || !strings.Contains(copies[0], "--chmod=0755") {
		t.Errorf("Dockerfile COPY %q; want the binary at %s, mode 0755", copies, BinaryPath)
	}
	labels := map[string]string{}
	for _, l := range get("LABEL") {
		for _, m := range regexp.MustCompile(`([a-z.]+)="([^"]*)"`).FindAllStringSubmatch(l, -1) {
			labels[m[1]] = m[2]
		}
	}
	if want := Labels("${VERSION}"); !mapsEqual(labels, want) {
		t.Errorf("Dockerfile labels %v, image-tar %v", labels, want)
	}
	// The binary: the Makefile's build flags (make image-tar packs bin/coreguard).
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "-trimpath") ||
		!strings.Contains(text, `-ldflags "`+strings.ReplaceAll(makeLDFLAGS(t), "$(VERSION)", "${VERSION}")+`"`) {
		t.Errorf("Dockerfile go build flags differ from the Makefile's (CGO_ENABLED=0, -trimpath, -ldflags %q)", makeLDFLAGS(t))
	}
}

func makeLDFLAGS(t *testing.T) string {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LDFLAGS := (.*)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no LDFLAGS in the Makefile")
	}
	return strings.TrimSpace(m[1])
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestImageReproducible(t *testing.T) {
	bin := []byte("\x7fELF not really a binary")
	dir := t.TempDir()
	var sums [2][32]byte
	for i := range sums {
		var imgs []v1.Image
		for _, arch := range []string{"amd64", "arm64"} {
			img, err := Image(append(bin, arch...), "v9.9.9", arch)
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, img)
		}
		dst := filepath.Join(dir, "image.tar")
		if err := WriteOCIArchive(imgs, "example.test/coreguard:v9", "v9", dst); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(b)
		if i == 0 {
			checkArchive(t, b, []string{"amd64", "arm64"})
		}
	}
	if sums[0] != sums[1] {
		t.Error("two builds of the same binary differ")
	}
}

// checkArchive reads the tarball back: OCI layout, the name annotation
// containerd imports by on an image index listing one image per
// architecture, each manifest's config naming the platform the index
// gives it, the config the Dockerfile gives, every blob present.
func checkArchive(t *testing.T, archive []byte, arches []string) {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: owner %d:%d, time %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", files["oci-layout"])
	}
	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
		Platform    *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	}
	blob := func(d string) []byte {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")]
		if !ok || "sha256:"+sha256hex(b) != d {
			t.Fatalf("blob %s missing or not what its digest says", d)
		}
		return b
	}
	var layout struct{ Manifests []descriptor }
	if err := json.Unmarshal(files["index.json"], &layout); err != nil || len(layout.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	top := layout.Manifests[0]
	if top.Annotations["io.containerd.image.name"] != "example.test/coreguard:v9" || top.Annotations["org.opencontainers.image.ref.name"] != "v9" ||
		top.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index.json entry %+v: want the image index, named", top)
	}
	var index struct {
		MediaType string `json:"mediaType"`
		Manifests []descriptor
	}
	if err := json.Unmarshal(blob(top.Digest), &index); err != nil || index.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("image index: %v (%s)", err, index.MediaType)
	}
	var got []string
	for _, m := range index.Manifests {
		if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.Platform == nil || m.Platform.OS != "linux" {
			t.Fatalf("index entry %+v", m)
		}
		got = append(got, m.Platform.Architecture)
		var one struct {
			Config descriptor   `json:"config"`
			Layers []descriptor `json:"layers"`
		}
		if err := json.Unmarshal(blob(m.Digest), &one); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Architecture, OS string
			Config           struct {
				Entrypoint, Cmd, Env []string
				User, WorkingDir     string
				Labels               map[string]string
			} `json:"config"`
		}
		if err := json.Unmarshal(blob(one.Config.Digest), &cfg); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.Config.Entrypoint, Entrypoint) || !slices.Equal(cfg.Config.Cmd, Cmd) || cfg.Config.User != User ||
			cfg.OS != m.Platform.OS || cfg.Architecture != m.Platform.Architecture || cfg.Config.Labels["org.opencontainers.image.version"] != "v9.9.9" {
			t.Errorf("%s image config %+v", m.Platform.Architecture, cfg)
		}
		for _, l := range one.Layers {
			blob(l.Digest)
		}
	}
	if !slices.Equal(got, arches) {
		t.Errorf("the index lists %v, want %v", got, arches)
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	const hexdigits = "0123456789abcdef"
	out := make([]byte, 64)
	for i, c := range s {
		out[2*i], out[2*i+1] = hexdigits[c>>4], hexdigits[c&15]
	}
	return string(out)
}

// configFields lists the configuration's fields by dotted JSON path, down
// to the first field that is not a struct (rule lists are written as []).
func configFields(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			out = append(out, configFields(f.Type, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}
