package main

import (
	"flag"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/topology"
)

func configCommand() command {
	return command{
		name:         "config",
		short:        "Check a configuration file before rolling it out.",
		args:         "FILE",
		completeArgs: completions{files: true},
		summary: "Check a configuration file as coreguard run would read it (strictly: every error names its\n" +
			"field), and against this node's topology (or --sysfs-root's): reserved CPUs that are offline or\n" +
			"leave no core to pin are errors. Prints the configuration with every default filled in, as YAML,\n" +
			"and the warnings coreguard would log on stderr.\n" +
			"Exit status: 0 when coreguard would run with it, 1 when it would refuse it, 2 for bad usage.",
		setup: func(fs *flag.FlagSet) runFunc {
			root := fs.String("sysfs-root", "", "sysfs to check the configuration against (default: the file's sysfsRoot, /sys)")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 1 {
					return usageError{"give one configuration file"}
				}
				cfg, err := config.Load(args[0])
				if err != nil {
					return err
				}
				sysfs := cfg.SysfsRoot
				if *root != "" {
					sysfs = *root
				}
				topo, err := topology.Read(sysfs)
				if err != nil {
					return fmt.Errorf("sysfsRoot %s: %w", sysfs, err)
				}
				a, err := alloc.New(topo, cfg.AllocOptions())
				if err != nil {
					return fmt.Errorf("%s: config does not fit this machine: %w", args[0], err)
				}
				printWarnings(stderr, append(a.Warnings(), cfg.Admission.Warnings()...)...)
				out, err := yaml.Marshal(cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "# %s: coreguard would run with it; every field as it would be in force:\n%s", args[0], out)
				return nil
			}
		},
	}
}
