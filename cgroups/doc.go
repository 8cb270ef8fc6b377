// Package cgroups is coreguard's cgroup layer: it turns the cgroup paths
// kubelet and the runtimes hand out (cgroupfs "/kubepods/burstable/pod<uid>"
// or systemd "kubepods-burstable-pod<uid>.slice[:prefix:id]") into
// directories of the cpu controller, clears the pod-level CFS quota that NRI
// cannot reach, and reads CFS throttling counters from cpu.stat, on cgroup
// v1 and v2 alike.
//
// Every function works on a Hierarchy rooted at a directory (default
// /sys/fs/cgroup) so tests can drive the same code on private cgroups or on
// fixture trees. The package-level functions use the host's hierarchy.
package cgroups
