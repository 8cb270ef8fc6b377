package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"

	"github.com/coreguard/coreguard/cgroups"
	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/kernel"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology"
)

func runCommand() command {
	return command{
		short: "Run the NRI plugin inside containerd or CRI-O.",
		name:  "run",
		summary: "Run the NRI plugin. External: dials the runtime's NRI socket and reconnects when the runtime\n" +
			"restarts. Pre-installed (started by the runtime from its plugin dir as NN-coreguard): takes the\n" +
			"socket from NRI_PLUGIN_SOCKET and its configuration from the runtime, logs to the system journal\n" +
			"(tag coreguard: journalctl -t coreguard), and exits with the connection.",
		setup: func(fs *flag.FlagSet) func([]string, io.Writer) error {
			root := sysfsFlag(fs)
			socket := fs.String("socket", plugin.DefaultSocket, "the runtime's NRI socket (external mode)")
			cfgPath := fs.String("config", "", "YAML configuration file (default: built-in defaults; a configuration the runtime passes replaces it)")
			name := fs.String("name", plugin.DefaultName, "NRI plugin name")
			index := fs.String("index", plugin.DefaultIndex, "NRI plugin index (two digits; lower runs earlier)")
			level := fs.String("log-level", "info", "log level: debug, info, warn, error")
			format := fs.String("log-format", "text", "log format: text or json")
			metricsAddr := fs.String("metrics-address", "", "serve Prometheus metrics on this host:port (overrides the config's metricsAddress; default off)")
			cgroupRoot := fs.String("cgroup-root", cgroups.DefaultRoot, "cgroup file system root, where pod CFS quotas are cleared and throttling is read")
			return func(args []string, _ io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				log, err := newLogger(*level, *format)
				if err != nil {
					return usageError{err.Error()}
				}
				if os.Getenv("NRI_PLUGIN_SOCKET") != "" {
					// The runtime starts pre-installed plugins with no stdout
					// or stderr: log to the system journal instead.
					if hook, err := lsyslog.NewSyslogHook("", "", syslog.LOG_DAEMON|syslog.LOG_INFO, "coreguard"); err == nil {
						log.AddHook(hook)
					}
				}
				cfg := config.Default()
				if *cfgPath != "" {
					if cfg, err = config.Load(*cfgPath); err != nil {
						return err
					}
				}
				topo, err := topology.Read(*root)
				if err != nil {
					return err
				}
				addr := cfg.MetricsAddress
				if *metricsAddr != "" {
					addr = *metricsAddr
				}
				var metrics *plugin.Metrics
				if addr != "" {
					metrics = plugin.NewMetrics()
					l, err := metrics.Serve(addr)
					if err != nil {
						return fmt.Errorf("metrics: %w", err)
					}
					log.WithField("address", l.Addr().String()).Info("serving metrics on /metrics")
				}
				opts := plugin.Options{Name: *name, Index: *index, Socket: *socket,
					Config: cfg, Topology: topo, Log: log, Metrics: metrics}
				opts.KernelBuggy = kernelVerdict(cfg, log)
				if h, err := cgroups.Open(*cgroupRoot); err != nil {
					log.WithError(err).Warn("no cgroup tree: pod-level CFS quota clearing and throttling stats are off")
				} else {
					opts.Cgroups = h
				}
				p, err := plugin.New(opts)
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

// kernelVerdict decides whether the running kernel has the CFS throttling
// bug (cfsQuota: auto clears quotas then) and says so in the log.
func kernelVerdict(cfg *config.Config, log *logrus.Logger) bool {
	release, err := kernel.Running()
	if err != nil {
		log.WithError(err).Warn("cannot read the running kernel's release: taking it as not having the CFS throttling bug")
		return false
	}
	v := cfg.Kernel.Decide(release)
	entry := log.WithFields(logrus.Fields{"kernel": release, "verdict": v.String(), "reason": v.Reason})
	if v.Rule != nil {
		entry = entry.WithField("rule", v.Rule.Name)
	}
	if v.Known {
		entry.Info("CFS throttling bug verdict")
	} else {
		entry.Warn("CFS throttling bug verdict unknown for this kernel (config kernel.unknown decides)")
	}
	return v.Buggy
}

func newLogger(level, format string) (*logrus.Logger, error) {
	log := logrus.New()
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	log.SetLevel(lv)
	switch format {
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", format)
	}
	return log, nil
}
