package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kubeletSysctls are the kernel settings kubelet's setupNode writes
// (protectKernelDefaults: false). They are saved before kubelet starts and
// written back after it stops, so the host is left as found.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// fixedHostPaths are paths kubelet uses whatever its --root-dir: the
// device-plugin socket dir and the /var/log/containers symlinks (and their
// parents). Those that did not exist before the cluster are removed after.
var fixedHostPaths = []string{
	"/var/lib/kubelet/device-plugins/kubelet.sock",
	"/var/lib/kubelet/device-plugins",
	"/var/lib/kubelet",
	"/var/log/containers",
	"/var/log/pods",
}

// hostState is what the cluster may change outside its own directory.
type hostState struct {
	sysctls  map[string]string
	existed  map[string]bool
	iptables map[string]map[string]bool // "iptables -t nat" -> chains present before
}

var iptablesTables = []string{"filter", "nat", "mangle"}

func saveHost() *hostState {
	h := &hostState{sysctls: map[string]string{}, existed: map[string]bool{}, iptables: map[string]map[string]bool{}}
	for _, s := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			h.sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	for _, p := range fixedHostPaths {
		_, err := os.Lstat(p)
		h.existed[p] = err == nil
	}
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, tbl := range iptablesTables {
			h.iptables[tool+" "+tbl] = chains(tool, tbl)
		}
	}
	return h
}

// chains lists the user chains of a table (nil when the tool is missing).
func chains(tool, table string) map[string]bool {
	if _, err := exec.LookPath(tool); err != nil {
		return nil
	}
	out, err := exec.Command(tool, "-w", "-t", table, "-S").Output()
	if err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "-N" {
			m[f[1]] = true
		}
	}
	return m
}

// restore undoes kubelet's host changes; podLogDir is where this cluster's
// pod logs live (the /var/log/containers symlinks point there).
func (h *hostState) restore(podLogDir string) error {
	var errs []error
	for s, v := range h.sysctls {
		cur, _ := os.ReadFile("/proc/sys/" + s)
		if strings.TrimSpace(string(cur)) != v {
			if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", s, v, err))
			}
		}
	}
	// Symlinks into our pod log dir, then every path that was not there.
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, podLogDir+"/") {
				_ = os.Remove(p)
			}
		}
	}
	for _, p := range fixedHostPaths {
		if h.existed[p] {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s (kubelet made it): %w", p, err))
		}
	}
	for key, before := range h.iptables {
		if before == nil {
			continue
		}
		f := strings.Fields(key)
		for c := range chains(f[0], f[1]) {
			if before[c] || !strings.HasPrefix(c, "KUBE-") {
				continue
			}
			unlink(f[0], f[1], c)
			_ = exec.Command(f[0], "-w", "-t", f[1], "-F", c).Run()
			if out, err := exec.Command(f[0], "-w", "-t", f[1], "-X", c).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s -t %s -X %s: %v: %s", f[0], f[1], c, err, out))
			}
		}
	}
	return errors.Join(errs...)
}

// leftovers lists host changes still present after restore.
func (h *hostState) leftovers() []string {
	var out []string
	for s, v := range h.sysctls {
		cur, _ := os.ReadFile("/proc/sys/" + s)
		if c := strings.TrimSpace(string(cur)); c != v {
			out = append(out, fmt.Sprintf("sysctl %s=%s (was %s)", s, c, v))
		}
	}
	for _, p := range fixedHostPaths {
		if _, err := os.Lstat(p); err == nil && !h.existed[p] {
			out = append(out, "path "+p)
		}
	}
	for key, before := range h.iptables {
		if before == nil {
			continue
		}
		f := strings.Fields(key)
		for c := range chains(f[0], f[1]) {
			if !before[c] {
				out = append(out, fmt.Sprintf("%s chain %s", key, c))
			}
		}
	}
	return out
}

// unlink deletes the rules jumping to chain (kubelet's KUBE-FIREWALL is
// referenced from INPUT and OUTPUT).
func unlink(tool, table, chain string) {
	out, err := exec.Command(tool, "-w", "-t", table, "-S").Output()
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "-A" || !strings.Contains(" "+l+" ", " -j "+chain+" ") {
			continue
		}
		f[0] = "-D"
		_ = exec.Command(tool, append([]string{"-w", "-t", table}, f...)...).Run()
	}
}
