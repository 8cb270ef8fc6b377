package main

import (
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/coreguard/coreguard/cgroups"
)

func throttleCommand() command {
	return command{
		short: "List the most CFS-throttled containers on this node.",
		name:  "throttle",
		summary: "List the node's most CFS-throttled containers, read from cgroup cpu.stat (v1 cpu controller or v2):\n" +
			"container cgroups are the children of pod cgroups (pod<uid>, or ...-pod<uid>.slice) under kubelet's\n" +
			"/kubepods and /kubepods.slice, or under --cgroup-parent. Sorted by throttled ratio (throttled periods\n" +
			"over periods), then throttled seconds. The counters are since the container started.\n" +
			"cgroupfs holds no namespace or pod names: rows show the pod UID and the runtime's container id\n" +
			"(its first 13 characters; --json has the whole id and the cgroup path).\n" +
			"Only throttling by a container's own quota shows on its row: a container held back by its pod's\n" +
			"quota is counted in the pod cgroup's cpu.stat.",
		setup: func(fs *flag.FlagSet) runFunc {
			root := fs.String("cgroup-root", cgroups.DefaultRoot, "where the cgroup hierarchies are mounted (v1: the directory holding cpu/; v2: the cgroup2 mount)")
			parent := fs.String("cgroup-parent", "", "only this cgroup subtree, as a cgroupfs path (/kubepods/burstable) or a systemd slice (kubepods-burstable.slice)")
			top := fs.Int("top", 20, "show the N most throttled containers; 0 shows all")
			asJSON := fs.Bool("json", false, `print JSON: [{"podUID","containerID","cgroup","periods","throttledPeriods","throttledRatio","throttledSeconds"}]`)
			return func(args []string, stdout, _ io.Writer) error {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("unexpected arguments %q", args)}
				}
				if *top < 0 {
					return usageError{fmt.Sprintf("--top %d: want 0 (all) or more", *top)}
				}
				h, err := cgroups.Open(*root)
				if err != nil {
					return err
				}
				all, err := h.Containers(*parent)
				if err != nil {
					return err
				}
				if *top > 0 && len(all) > *top {
					all = all[:*top]
				}
				rows := throttleRows(all)
				if *asJSON {
					return writeJSON(stdout, rows)
				}
				return drawThrottle(stdout, h, rows)
			}
		},
	}
}

// throttleRow is one container as printed, with cAdvisor's counters.
type throttleRow struct {
	PodUID           string  `json:"podUID"`
	ContainerID      string  `json:"containerID"`
	Cgroup           string  `json:"cgroup"`
	Periods          uint64  `json:"periods"`
	ThrottledPeriods uint64  `json:"throttledPeriods"`
	ThrottledRatio   float64 `json:"throttledRatio"` // 0 to 1
	ThrottledSeconds float64 `json:"throttledSeconds"`
}

func throttleRows(all []cgroups.ContainerStat) []throttleRow {
	rows := make([]throttleRow, 0, len(all))
	for _, c := range all {
		rows = append(rows, throttleRow{
			PodUID: c.PodUID, ContainerID: c.ContainerID, Cgroup: c.Group,
			Periods: c.Periods, ThrottledPeriods: c.Throttled,
			ThrottledRatio: c.Ratio(), ThrottledSeconds: c.ThrottledTime.Seconds(),
		})
	}
	return rows
}

func drawThrottle(w io.Writer, h *cgroups.Hierarchy, rows []throttleRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintf(w, "no container cgroups found (cgroup %s, cpu controller at %s)\n", h.Version, h.CPUDir)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POD UID\tCONTAINER\tPERIODS\tTHROTTLED\tRATIO\tTHROTTLED_SECONDS")
	for _, r := range rows {
		id := r.ContainerID
		if len(id) > 13 {
			id = id[:13]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f%%\t%.3f\n", r.PodUID, id, r.Periods, r.ThrottledPeriods, 100*r.ThrottledRatio, r.ThrottledSeconds)
	}
	return tw.Flush()
}
