package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// containerdBackend runs containerd 2.x (version 3 config, runc shim,
// overlayfs snapshotter); images are imported with ctr once it runs.
type containerdBackend struct{ p paths }

func (*containerdBackend) name() string         { return "containerd" }
func (*containerdBackend) tempPrefix() string   { return "cg" }
func (*containerdBackend) cgroupPrefix() string { return "/cgtest-" }
func (*containerdBackend) importsBeforeStart() bool {
	return false
}

func (b *containerdBackend) layout(r *Runtime) {
	b.p = newPaths(r.Dir)
	r.Address, r.NRISocket = b.p.Address, b.p.NRISocket
	r.PluginPath, r.PluginConfigPath = b.p.PluginPath, b.p.PluginConfigPath
	r.ConfigPath, r.LogPath, r.PodLogDir = b.p.Config, b.p.Log, b.p.PodLogs
}

func (b *containerdBackend) prepare(r *Runtime) error {
	for _, d := range []string{b.p.Root, b.p.State, b.p.Temp, b.p.ShimSockets, b.p.RuncRoot, b.p.Opt, b.p.CNIConf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if len(b.p.ShimSockets) > 42 {
		return fmt.Errorf("shim socket_dir %q longer than 42 characters", b.p.ShimSockets)
	}
	if err := writeCNIConfig(b.p.CNIConf); err != nil {
		return err
	}
	return os.WriteFile(b.p.Config, []byte(renderConfig(b.p, r.opts)), 0o644)
}

func (b *containerdBackend) command(r *Runtime) *exec.Cmd {
	cmd := exec.Command(filepath.Join(r.opts.BinDir, "containerd"), "--config", b.p.Config)
	// containerd finds containerd-shim-runc-v2 (and the shim runc) in PATH.
	cmd.Env = append(os.Environ(), "PATH="+r.opts.BinDir+":"+os.Getenv("PATH"))
	if r.opts.OwnProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	return cmd
}

// importTarball loads the tarball into the CRI namespace with ctr (which
// also unpacks it for the overlayfs snapshotter CRI uses), as an admin or
// `kind load image-archive` does. CRI learns about imported images from
// containerd events, a moment after ctr returns (Runtime.waitImages).
func (b *containerdBackend) importTarball(ctx context.Context, r *Runtime, tarPath string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(r.opts.BinDir, "ctr"),
		"--address", b.p.Address, "--namespace", "k8s.io", "images", "import", tarPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import %s: %v\n%s", tarPath, err, out)
	}
	return nil
}
