package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/kubelet"
	"github.com/coreguard/coreguard/topology"
)

func topologyCommand() command {
	return command{
		short: "Show the host's CPU topology as coreguard reads it.",
		name:  "topology",
		summary: "Show the host's CPU topology as coreguard reads it: sockets, NUMA nodes, L3 groups,\n" +
			"physical cores with their sibling threads, isolated and offline CPUs.",
		setup: func(fs *flag.FlagSet) runFunc {
			root := sysfsFlag(fs)
			kubeletRoot := kubeletFlag(fs)
			asJSON := fs.Bool("json", false, "print one JSON object (sockets, numaNodes, llcGroups, cores, threads, online, coreList, isolated, ..., warnings) instead of the drawing")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				t, err := topology.Read(*root)
				if err != nil {
					return err
				}
				warnings := kubeletWarnings(*kubeletRoot)
				if *asJSON {
					return writeJSON(stdout, struct {
						topology.JSONSummary
						Warnings []string `json:"warnings,omitempty"`
					}{topology.Summary(t), warnings})
				}
				printWarnings(stderr, warnings...)
				return topology.Draw(stdout, t, topology.DrawOptions{})
			}
		},
	}
}

func sysfsFlag(fs *flag.FlagSet) *string {
	return fs.String("sysfs-root", config.DefaultSysfsRoot, "sysfs to read the topology from (a directory holding devices/system/cpu), e.g. a saved tree from another machine")
}

func kubeletFlag(fs *flag.FlagSet) *string {
	return fs.String("kubelet-root-dir", config.DefaultKubeletRootDir, "kubelet's root dir, where its CPU manager checkpoint says whether kubelet pins CPUs on this node (then coreguard does not)")
}

// kubeletWarnings says when kubelet's CPU manager keeps coreguard from
// pinning on this node, or when that cannot be told.
func kubeletWarnings(rootDir string) []string {
	m, err := kubelet.ReadCPUManager(rootDir)
	switch {
	case err != nil:
		return []string{err.Error()}
	case m.Static():
		return []string{m.Conflict()}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
