package alloc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coreguard/coreguard/cpuset"
)

// ExhaustedError says a request cannot be met from the free whole cores.
type ExhaustedError struct {
	Request int
	// Reason is set when cores were free but giving them would break a rule
	// (such as emptying the shared pool).
	Reason string
	// Free says how many whole cores are free and where.
	Free string
}

func (e *ExhaustedError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("cannot allocate %d exclusive CPUs: %s; %s", e.Request, e.Reason, e.Free)
	}
	return fmt.Sprintf("not enough free whole cores for %d exclusive CPUs: %s", e.Request, e.Free)
}

// OddRequestError is the Reject policy's answer to a request that does not
// fill whole cores, in the spirit of kubelet's SMTAlignmentError.
type OddRequestError struct {
	Request        int
	ThreadsPerCore int
}

func (e *OddRequestError) Error() string {
	tpc := e.ThreadsPerCore
	lo, hi := e.Request/tpc*tpc, (e.Request/tpc+1)*tpc
	sizes := fmt.Sprintf("nearest whole-core sizes are %d and %d", lo, hi)
	if lo == 0 {
		sizes = fmt.Sprintf("the smallest whole-core size is %d", hi)
	}
	return fmt.Sprintf("SMT alignment error: requested %d CPUs is not a multiple of %d threads per core; %s "+
		"(oddCPUs: %s; %s or %s would run it on whole cores)", e.Request, tpc, sizes, Reject, RoundUp, Isolate)
}

// ConflictError says CPUs to be taken lie on a core someone else holds.
type ConflictError struct {
	Owner  string
	CPUs   cpuset.CPUSet
	Core   cpuset.CPUSet
	Holder string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%q cannot take CPUs %s: core %s is held by %s", e.Owner, e.CPUs, e.Core, e.Holder)
}

// checkOdd applies the Reject policy before packing where the machine's
// cores are all alike; on hybrid machines Allocate checks after packing,
// since an odd count may fill a mix of cores exactly.
func (a *Allocator) checkOdd(n int) error {
	if a.odd != Reject {
		return nil
	}
	tpc := a.topo.ThreadsPerCore()
	if a.uniformCores() && n%tpc != 0 {
		return a.oddError(n)
	}
	return nil
}

func (a *Allocator) oddError(n int) error {
	return &OddRequestError{Request: n, ThreadsPerCore: a.topo.ThreadsPerCore()}
}

func (a *Allocator) uniformCores() bool {
	tpc := a.topo.ThreadsPerCore()
	for _, c := range a.topo.Cores {
		if c.CPUs.Size() != tpc {
			return false
		}
	}
	return true
}

// freeSummary says how many whole cores are free, per socket and NUMA node,
// e.g. "3 whole cores (6 CPUs) free: socket 0: 1 (NUMA node 0: 1); socket 1: 2 (NUMA node 1: 2)".
func (a *Allocator) freeSummary() string {
	type count struct{ cores, threads int }
	var total count
	perSocket := map[int]*count{}
	perNode := map[[2]int]*count{}
	var sockets []int
	var nodes [][2]int
	for ci, u := range a.use {
		if u != nil {
			continue
		}
		c := a.topo.Cores[ci]
		n := c.CPUs.Size()
		total.cores++
		total.threads += n
		if perSocket[c.Socket] == nil {
			perSocket[c.Socket] = &count{}
			sockets = append(sockets, c.Socket)
		}
		perSocket[c.Socket].cores++
		k := [2]int{c.Socket, c.NUMA}
		if perNode[k] == nil {
			perNode[k] = &count{}
			nodes = append(nodes, k)
		}
		perNode[k].cores++
	}
	if total.cores == 0 {
		return "no whole core is free"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d whole %s (%d CPUs) free:", total.cores, plural(total.cores, "core", "cores"), total.threads)
	for i, s := range slices.Sorted(slices.Values(sockets)) {
		if i > 0 {
			sb.WriteString(";")
		}
		fmt.Fprintf(&sb, " socket %d: %d (", s, perSocket[s].cores)
		first := true
		for _, k := range nodes {
			if k[0] != s {
				continue
			}
			if !first {
				sb.WriteString(", ")
			}
			first = false
			fmt.Fprintf(&sb, "NUMA node %d: %d", k[1], perNode[k].cores)
		}
		sb.WriteString(")")
	}
	return sb.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
