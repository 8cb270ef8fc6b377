package harness

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// paths are all private to one Runtime. Sockets sit directly under a short
// os.MkdirTemp dir: unix socket paths are limited to 108 bytes and the
// shim manager's socket_dir to 42 characters.
type paths struct {
	Dir              string // the temp root; everything below is removed on cleanup
	Config           string
	Log              string
	Root             string
	State            string
	Temp             string
	Address          string // containerd gRPC socket (CRI and containerd API)
	NRISocket        string
	PluginPath       string
	PluginConfigPath string
	ShimSockets      string
	RuncRoot         string
	Opt              string
	CNIConf          string
	PodLogs          string
}

func newPaths(dir string) paths {
	j := func(s string) string { return dir + "/" + s }
	return paths{
		Dir: dir, Config: j("config.toml"), Log: j("containerd.log"),
		Root: j("root"), State: j("state"), Temp: j("tmp"),
		Address: j("c.sock"), NRISocket: j("nri.sock"),
		PluginPath: j("nri/plugins"), PluginConfigPath: j("nri/conf.d"),
		ShimSockets: j("s"), RuncRoot: j("runc"), Opt: j("opt"),
		CNIConf: j("cni/conf"), PodLogs: j("pods"),
	}
}

func q(s string) string { return strconv.Quote(s) }

func qlist(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func dur(d time.Duration) string { return q(d.String()) }

// renderConfig writes a version 3 config (containerd 2.4 migrates it).
// Every path is private (CNI plugins come from CNIBinDir, read only);
// imports is empty so host drop-ins never leak in.
func renderConfig(p paths, o Options) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("version = 3")
	w("root = %s", q(p.Root))
	w("state = %s", q(p.State))
	w("temp = %s", q(p.Temp))
	w("imports = []")
	// Snapshotters this VM cannot use only add log noise and start time.
	w(`disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp"]`)
	w("")
	w("[grpc]\n  address = %s", q(p.Address))
	w("[ttrpc]\n  address = %s", q(p.Address+".ttrpc"))
	w("[debug]\n  level = %s", q(o.LogLevel))
	w("")
	w("[plugins.'io.containerd.internal.v1.opt']\n  path = %s", q(p.Opt))
	w("[plugins.'io.containerd.image-verifier.v1.bindir']\n  bin_dir = %s", q(p.Opt+"/image-verifier/bin"))
	w("[plugins.'io.containerd.shim.v1.manager']\n  socket_dir = %s", q(p.ShimSockets))
	// Port 0: parallel containerds must not fight over 10010.
	w("[plugins.'io.containerd.grpc.v1.cri']\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"")
	w("[plugins.'io.containerd.cri.v1.images']\n  snapshotter = \"overlayfs\"")
	w("[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = %s", q(PauseImage))
	w("[plugins.'io.containerd.cri.v1.runtime']")
	// This VM drops CAP_SYS_RESOURCE from root: without this runc fails with
	// "can't get final child's PID from pipe: EOF" (oom_score_adj write).
	w("  restrict_oom_score_adj = true")
	w("  cdi_spec_dirs = []")
	// Pod network namespaces under the private state dir, not /var/run/netns.
	w("  netns_mounts_under_state_dir = true")
	w("[plugins.'io.containerd.cri.v1.runtime'.cni]\n  bin_dirs = [%s]\n  conf_dir = %s", q(o.CNIBinDir), q(p.CNIConf))
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd]\n  default_runtime_name = \"runc\"")
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"")
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n  Root = %s", q(p.RuncRoot))
	// A second handler as Kata's docs set theirs up: privileged containers
	// get no host devices (and no allow-all device rule).
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%s]\n  runtime_type = \"io.containerd.runc.v2\"\n  privileged_without_host_devices = true", NoHostDevicesHandler)
	w("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%s.options]\n  SystemdCgroup = false\n  Root = %s", NoHostDevicesHandler, q(p.RuncRoot))
	w("")
	w("[plugins.'io.containerd.nri.v1.nri']")
	w("  disable = %v", o.NRIOff)
	w("  socket_path = %s", q(p.NRISocket))
	w("  plugin_path = %s", q(p.PluginPath))
	w("  plugin_config_path = %s", q(p.PluginConfigPath))
	if o.PluginRegistrationTimeout > 0 {
		w("  plugin_registration_timeout = %s", dur(o.PluginRegistrationTimeout))
	}
	if o.PluginRequestTimeout > 0 {
		w("  plugin_request_timeout = %s", dur(o.PluginRequestTimeout))
	}
	if len(o.RequiredPlugins) > 0 {
		w("[plugins.'io.containerd.nri.v1.nri'.default_validator]")
		w("  enable = true")
		w("  required_plugins = %s", qlist(o.RequiredPlugins))
		if o.TolerateMissingPluginsAnnotation != "" {
			w("  tolerate_missing_plugins_annotation = %s", q(o.TolerateMissingPluginsAnnotation))
		}
	}
	if o.ExtraConfig != "" {
		w("\n%s", o.ExtraConfig)
	}
	return b.String()
}
