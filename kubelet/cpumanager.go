// Package kubelet reads what coreguard must know of the node's kubelet:
// whether its CPU manager runs the static policy, from the checkpoint the
// CPU manager keeps in kubelet's root dir. Under the static policy kubelet
// writes the cpusets of every container itself (and rewrites them on its
// reconcile loop), so coreguard must not pin there.
package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/coreguard/coreguard/internal/hostfile"
)

// CPUManagerStateFile is the CPU manager's checkpoint in kubelet's root dir.
const CPUManagerStateFile = "cpu_manager_state"

// PolicyStatic is the CPU manager policy that assigns exclusive CPUs.
const PolicyStatic = "static"

// CPUManager is what the checkpoint says.
type CPUManager struct {
	// Path is the checkpoint file read.
	Path string
	// Policy is the policy kubelet runs ("none", "static"); "" when there
	// is no checkpoint (kubelet has not run with this root dir).
	Policy string
}

// Static reports whether kubelet's CPU manager owns cpusets on this node.
func (m CPUManager) Static() bool { return m.Policy == PolicyStatic }

// Conflict says why coreguard does not pin while kubelet runs the static
// policy, and what to do; "" when it does not.
func (m CPUManager) Conflict() string {
	if !m.Static() {
		return ""
	}
	return fmt.Sprintf("kubelet's CPU manager runs the static policy on this node (%s): kubelet assigns cpusets here, "+
		"so coreguard does not pin (CFS quota and admission still act); set kubelet's cpuManagerPolicy to none "+
		"(drain the node, remove %s, restart kubelet: docs/install.md)", m.Path, CPUManagerStateFile)
}

// StateError is a checkpoint that exists but cannot be read or understood.
type StateError struct {
	Path string
	Err  error
}

func (e *StateError) Error() string {
	return fmt.Sprintf("kubelet CPU manager state %s: %v", e.Path, e.Err)
}
func (e *StateError) Unwrap() error { return e.Err }

// checkpoint is the part of kubelet's CPU manager checkpoint read here
// (it also holds defaultCpuSet, entries and a checksum).
type checkpoint struct {
	PolicyName *string `json:"policyName"`
}

// maxCheckpointSize bounds the checkpoint read: it lists one entry per
// container with exclusive CPUs, well under this on any node.
const maxCheckpointSize = 4 << 20

// ReadCPUManager reads the CPU manager checkpoint under kubelet's root
// dir. A missing checkpoint is not an error: Policy is "" then.
func ReadCPUManager(rootDir string) (CPUManager, error) {
	m := CPUManager{Path: filepath.Join(rootDir, CPUManagerStateFile)}
	data, err := hostfile.Read(m.Path, maxCheckpointSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		return m, &StateError{Path: m.Path, Err: err}
	}
	var c checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return m, &StateError{Path: m.Path, Err: fmt.Errorf("not a CPU manager checkpoint: %w", err)}
	}
	if c.PolicyName == nil || *c.PolicyName == "" {
		return m, &StateError{Path: m.Path, Err: errors.New("not a CPU manager checkpoint: no policyName")}
	}
	m.Policy = *c.PolicyName
	return m, nil
}
