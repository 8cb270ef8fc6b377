package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/cpuset/alloc"
	"github.com/coreguard/coreguard/topology"
)

func planCommand() command {
	return command{
		short: "Dry run: show which whole cores requests would get.",
		name:  "plan",
		args:  "N [N ...]",
		summary: "Dry run: allocate exclusive CPUs for requests of N logical CPUs, in order, as coreguard would on\n" +
			"this node (or on a saved sysfs tree), and show what each gets and what stays shared.\n" +
			"Exit status: 0 when every request was met, 1 when one was not, 2 for bad usage.",
		setup: func(fs *flag.FlagSet) runFunc {
			root := sysfsFlag(fs)
			kubeletRoot := kubeletFlag(fs)
			reserved := fs.String("reserved", "", "reserved CPUs never given out exclusively, as a Linux list (kubelet's reservedSystemCPUs), e.g. 0,40; widened to whole cores")
			taken := fs.String("taken", "", "CPUs already held exclusively, as a Linux list; their cores are not free and split siblings are withheld")
			odd := choiceFlag(fs, "odd-cpus", string(alloc.RoundUp), "what to do with requests that do not fill whole cores: round-up, isolate or reject", alloc.OddCPUsValues)
			isolated := choiceFlag(fs, "isolated-cpus", string(alloc.IsolatedExclusiveOnly), "use of isolcpus CPUs: exclusive-only (pinned containers only), exclude (never), ignore (like any CPU)", alloc.IsolatedCPUsValues)
			asJSON := fs.Bool("json", false, `print JSON: {"allocations":[{"request":N,"cpus":"LIST"} or {"request":N,"error":"TEXT"}],"shared":"LIST",...}`)
			return func(args []string, stdout, stderr io.Writer) error {
				requests, err := parseRequests(args)
				if err != nil {
					return err
				}
				opts := alloc.Options{OddCPUs: alloc.OddCPUs(*odd), IsolatedCPUs: alloc.IsolatedCPUs(*isolated)}
				if opts.Reserved, err = cpuset.Parse(*reserved); err != nil {
					return usageError{fmt.Sprintf("--reserved: %v", err)}
				}
				takenSet, err := cpuset.Parse(*taken)
				if err != nil {
					return usageError{fmt.Sprintf("--taken: %v", err)}
				}
				t, err := topology.Read(*root)
				if err != nil {
					return err
				}
				res, err := alloc.Plan(t, opts, takenSet, requests)
				if err != nil {
					return usageError{err.Error()}
				}
				res.Warnings = append(kubeletWarnings(*kubeletRoot), res.Warnings...)
				if *asJSON {
					err = writeJSON(stdout, res)
				} else {
					printWarnings(stderr, res.Warnings...)
					err = drawPlan(stdout, t, takenSet, res)
				}
				if err == nil && !res.OK() {
					return errFailed
				}
				return err
			}
		},
	}
}

func parseRequests(args []string) ([]int, error) {
	if len(args) == 0 {
		return nil, usageError{"no requests: give one or more CPU counts"}
	}
	var out []int
	for _, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil || n <= 0 {
			return nil, usageError{fmt.Sprintf("request %q is not a positive whole number of CPUs", a)}
		}
		out = append(out, n)
	}
	return out, nil
}

// drawPlan prints each request's outcome, then the topology with every core
// tagged by who holds it: #N for request N, T for --taken, R for reserved.
// The warnings are the caller's to print (to stderr).
func drawPlan(w io.Writer, t *topology.Topology, taken cpuset.CPUSet, res alloc.PlanResult) error {
	holder := map[int]string{}
	tag := func(cpus cpuset.CPUSet, label string) {
		for cpu := range cpus.All() {
			if c, ok := t.CoreOf(cpu); ok {
				holder[c.Index] = label
			}
		}
	}
	tag(res.Reserved, "R")
	tag(taken, "T")
	for i, a := range res.Allocations {
		if a.Error != "" {
			fmt.Fprintf(w, "#%d  %3d CPUs  refused: %s\n", i+1, a.Request, a.Error)
			continue
		}
		line := fmt.Sprintf("#%d  %3d CPUs  -> %s", i+1, a.Request, a.CPUs)
		if a.Withheld != nil {
			line += fmt.Sprintf("  (withheld %s)", a.Withheld)
		}
		fmt.Fprintln(w, line)
		tag(*a.CPUs, fmt.Sprintf("#%d", i+1))
	}
	fmt.Fprintf(w, "shared pool: %s   withheld: %s   reserved: %s\n\n", orDash(res.Shared), orDash(res.Withheld), orDash(res.Reserved))
	legend := []string{"#N: request N   T: --taken   R: reserved (shared)   untagged: shared"}
	return topology.Draw(w, t, topology.DrawOptions{
		CoreTag: func(c topology.Core) string { return holder[c.Index] },
		Legend:  legend,
	})
}

func orDash(s cpuset.CPUSet) string {
	if s.IsEmpty() {
		return "-"
	}
	return strings.TrimSpace(s.String())
}
