package admission

import (
	"os"
	"path/filepath"
	"syscall"
)

// ProcHostNamespaces knows the host's namespaces from /proc/1/ns (the
// host's init; coreguard needs the host PID namespace to see it, as a
// pre-installed plugin or a hostPID DaemonSet has), falling back to its own
// (/proc/self/ns, right when it runs in the host's namespaces).
type ProcHostNamespaces struct {
	ids map[string]nsID
}

type nsID struct{ dev, ino uint64 }

// procNames maps OCI namespace types to /proc/PID/ns file names.
var procNames = map[string]string{"pid": "pid", "ipc": "ipc", "network": "net", "uts": "uts", "mount": "mnt"}

// NewProcHostNamespaces reads the host's namespace identities under procRoot
// (normally /proc).
func NewProcHostNamespaces(procRoot string) *ProcHostNamespaces {
	h := &ProcHostNamespaces{ids: map[string]nsID{}}
	for nsType, file := range procNames {
		for _, pid := range []string{"1", "self"} {
			if id, ok := statNS(filepath.Join(procRoot, pid, "ns", file)); ok {
				h.ids[nsType] = id
				break
			}
		}
	}
	return h
}

// IsHost reports whether path names the host's namespace of that type. A
// path coreguard cannot stat is not the host's: it cannot tell, and an
// ordinary pod must not be refused for that.
func (h *ProcHostNamespaces) IsHost(nsType, path string) bool {
	want, ok := h.ids[nsType]
	if !ok {
		return false
	}
	got, ok := statNS(path)
	return ok && got == want
}

func statNS(path string) (nsID, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return nsID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nsID{}, false
	}
	return nsID{dev: uint64(st.Dev), ino: st.Ino}, true
}
