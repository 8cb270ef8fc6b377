package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// printTable shows each pod's outcome; refusals are explained below it,
// since their text is long.
func printTable(w io.Writer, results []result, threadsPerCore int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tQOS\tREQUEST\tCPUSET (cgroup)\tCFS QUOTA (cgroup)\tKUBELET full-pcpus-only")
	var notes []string
	for _, r := range results {
		cpus, quota := r.Cpus, quotaString(r.Quota)
		if r.Err != nil {
			cpus, quota = "refused (see below)", "-"
			notes = append(notes, fmt.Sprintf("%s: %s", r.Spec.Name, coreguardMessage(r.Err)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Spec.Name, r.QoS, request(r.Spec.Res), cpus, quota,
			kubelet(r.QoS, r.Spec.Res, threadsPerCore))
	}
	_ = tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, "  "+n)
	}
}

func quotaString(q int64) string {
	if q < 0 {
		return "unlimited (-1)"
	}
	return strconv.FormatInt(q, 10) + " us / 100000"
}

// coreguardMessage strips the CRI and containerd wrapping from an error,
// keeping the plugin's own words when they are there.
func coreguardMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "coreguard:"); i >= 0 {
		return msg[i:]
	}
	return msg
}
