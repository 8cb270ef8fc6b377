package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/plugin"
)

func runCommand() command {
	return command{
		short: "Run the NRI plugin inside containerd or CRI-O.",
		name:  "run",
		summary: "Run the NRI plugin. External: dials the runtime's NRI socket and reconnects when the runtime\n" +
			"restarts. Pre-installed (the runtime starts NN-coreguard from its plugin dir with no arguments;\n" +
			"a bare 'coreguard' started that way is 'coreguard run'): takes the socket from NRI_PLUGIN_SOCKET\n" +
			"and its configuration from the runtime's plugin config dir, logs to the system journal (tag\n" +
			"coreguard: journalctl -t coreguard) and to the configuration's log.file, and exits with the\n" +
			"connection. Flags given here win over the same settings of the configuration in force.",
		setup: func(fs *flag.FlagSet) runFunc {
			socket := fs.String("socket", plugin.DefaultSocket, "the runtime's NRI socket (external mode)")
			cfgPath := fs.String("config", "", "YAML configuration file (default: built-in defaults; a configuration the runtime passes replaces it)")
			stateDir := fs.String("state-dir", "", "keep the last configuration coreguard ran with here, to run on when the one given is refused at start, and the copy of coreguard the runtime runs as the spec-check hook: must be this same path on the host (default: none; a pre-installed coreguard keeps the configuration beside itself)")
			name := fs.String("name", plugin.DefaultName, "NRI plugin name")
			index := fs.String("index", plugin.DefaultIndex, "NRI plugin index (two digits; lower runs earlier)")
			var o plugin.Overrides
			fs.StringVar(&o.SysfsRoot, "sysfs-root", "", "sysfs to read the topology from (default: the configuration's sysfsRoot, /sys)")
			choiceVar(fs, &o.LogLevel, "log-level", "", "log level: debug, info, warn, error (default: the configuration's log.level, info)", config.LogLevels)
			choiceVar(fs, &o.LogFormat, "log-format", "", "log format: text or json (default: the configuration's log.format, text)", config.LogFormats)
			fs.StringVar(&o.MetricsAddress, "metrics-address", "", "serve Prometheus metrics on this host:port (default: the configuration's metricsAddress, off)")
			fs.StringVar(&o.HealthAddress, "health-address", "", "serve /healthz and /readyz on this host:port (default: the configuration's healthAddress, off)")
			fs.StringVar(&o.CgroupRoot, "cgroup-root", "", "cgroup file system root (default: the configuration's cgroupRoot, /sys/fs/cgroup)")
			return func(args []string, _, _ io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				if err := checkOverrides(&o); err != nil {
					return usageError{err.Error()}
				}
				p, err := plugin.New(plugin.Options{Name: *name, Index: *index, Socket: *socket,
					ConfigFile: *cfgPath, StateDir: *stateDir, Overrides: o, Log: logrus.New(), Version: buildVersion()})
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return p.Run(ctx)
			}
		},
	}
}

// checkOverrides checks the flags that stand for configuration fields, as
// the configuration checks those fields, and makes their paths absolute
// (the configuration requires that; on the command line a relative path
// means the current directory).
func checkOverrides(o *plugin.Overrides) error {
	oneOf := func(flag, value string, allowed ...string) error {
		if value == "" || slices.Contains(allowed, value) {
			return nil
		}
		return fmt.Errorf("--%s: %q is not one of %s", flag, value, strings.Join(allowed, ", "))
	}
	if err := errors.Join(oneOf("log-level", o.LogLevel, config.LogLevels...),
		oneOf("log-format", o.LogFormat, config.LogFormats...)); err != nil {
		return err
	}
	if why := config.NotHostPort(o.MetricsAddress); why != "" {
		return fmt.Errorf("--metrics-address: %q %s", o.MetricsAddress, why)
	}
	if why := config.NotHostPort(o.HealthAddress); why != "" {
		return fmt.Errorf("--health-address: %q %s", o.HealthAddress, why)
	}
	for _, p := range []*string{&o.SysfsRoot, &o.CgroupRoot} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	return nil
}
