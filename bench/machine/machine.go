// Package machine describes the machine a benchmark ran on: CPU model,
// kernel, load average. The benchmarks record it next to their numbers,
// which mean little without knowing how busy the machine was.
package machine

import (
	"os"
	"strings"
)

// Model is the first "model name" of /proc/cpuinfo, "?" when unknown.
func Model() string { return modelOf(readOr("/proc/cpuinfo")) }

// LoadAvg is the 1, 5 and 15 minute load averages of /proc/loadavg,
// "?" when unknown.
func LoadAvg() string { return loadOf(readOr("/proc/loadavg")) }

// Kernel is the running kernel's release (/proc/sys/kernel/osrelease),
// "?" when unknown.
func Kernel() string {
	if r := strings.TrimSpace(readOr("/proc/sys/kernel/osrelease")); r != "" {
		return r
	}
	return "?"
}

func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func modelOf(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func loadOf(loadavg string) string {
	f := strings.Fields(loadavg)
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
