package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/runtimeconfig"
)

func enableNRICommand() command {
	return command{
		name:  "enable-nri",
		short: "Turn NRI on in the node's containerd or CRI-O config and restart the runtime.",
		summary: "Turn NRI on for coreguard in the node's runtime, as the chart's nri.patchRuntimeConfig init step\n" +
			"does. When something already accepts connections on --nri-socket, nothing is changed. Otherwise:\n" +
			"containerd: --containerd-config gets NRI on and external plugins accepted (disable = false,\n" +
			"disable_connections = false); the file is re-encoded, which drops its comments, and kept as it was\n" +
			"beside it (" + runtimeconfig.BackupSuffix + "); a missing file is written with only that section; a\n" +
			"version 1 config, or one whose imports turn NRI off, is refused. CRI-O: --crio-config-dir gets\n" +
			runtimeconfig.CRIODropInName + " (enable_nri = true). Then, unless --no-restart, the runtime's systemd\n" +
			"unit is restarted through systemd on the system D-Bus (its containers keep running) and the command\n" +
			"waits for the NRI socket. The runtime is restarted only after a change.\n" +
			"Exit status: 0 when NRI is on (or the config was changed with --no-restart), 1 otherwise.",
		setup: func(fs *flag.FlagSet) runFunc {
			rt := choiceFlag(fs, "runtime", "", "the node's runtime (required): containerd or crio", runtimeconfig.Runtimes)
			containerdConfig := fs.String("containerd-config", runtimeconfig.DefaultContainerdConfig, "containerd's config file")
			crioDir := fs.String("crio-config-dir", runtimeconfig.DefaultCRIODropInDir, "CRI-O's drop-in directory")
			socket := fs.String("nri-socket", plugin.DefaultSocket, "the NRI socket the runtime listens on once NRI is on")
			unit := fs.String("unit", "", "the runtime's systemd unit (default containerd.service or crio.service)")
			noRestart := fs.Bool("no-restart", false, "change the config only; restart the runtime yourself")
			timeout := fs.Duration("timeout", runtimeconfig.DefaultTimeout, "how long to wait for the NRI socket after the restart")
			return func(args []string, stdout, _ io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				if *rt == "" {
					return usageError{"--runtime is required: containerd or crio"}
				}
				if *unit == "" {
					*unit = runtimeconfig.DefaultUnit(*rt)
				}
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return runtimeconfig.EnableNRI(ctx, runtimeconfig.Options{
					Runtime: *rt, ContainerdConfig: *containerdConfig, CRIODropInDir: *crioDir,
					Socket: *socket, Unit: *unit, Restart: !*noRestart, Restarter: runtimeconfig.Systemd{},
					Timeout: *timeout,
					Logf:    func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) },
				})
			}
		},
	}
}
