package alloc

import (
	"strconv"

	"github.com/coreguard/coreguard/cpuset"
	"github.com/coreguard/coreguard/topology"
)

// PlanResult is what a dry run of requests would give, in request order.
type PlanResult struct {
	Allocations []PlannedAllocation `json:"allocations"`
	// Shared is what is left for containers without exclusive CPUs.
	Shared cpuset.CPUSet `json:"shared"`
	// Withheld are CPUs nobody would run on (siblings under oddCPUs: isolate,
	// and the rest of partly taken cores).
	Withheld cpuset.CPUSet `json:"withheld"`
	Reserved cpuset.CPUSet `json:"reserved"`
	Warnings []string      `json:"warnings,omitempty"`
}

// PlannedAllocation is one request's outcome: CPUs, or an error.
type PlannedAllocation struct {
	Request  int            `json:"request"`
	CPUs     *cpuset.CPUSet `json:"cpus,omitempty"`
	Withheld *cpuset.CPUSet `json:"withheld,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// OK reports whether every request was met.
func (p PlanResult) OK() bool {
	for _, a := range p.Allocations {
		if a.Error != "" {
			return false
		}
	}
	return true
}

// Plan allocates the requests in order on a fresh allocator whose taken
// CPUs are already held, as `coreguard plan` shows them. It fails only when
// the options or the taken CPUs are invalid; a request that cannot be met is
// an error inside the result.
func Plan(t *topology.Topology, opts Options, taken cpuset.CPUSet, requests []int) (PlanResult, error) {
	a, err := New(t, opts)
	if err != nil {
		return PlanResult{}, err
	}
	if !taken.IsEmpty() {
		if _, err := a.Take("--taken", taken); err != nil {
			return PlanResult{}, err
		}
	}
	res := PlanResult{Warnings: a.Warnings()}
	for i, n := range requests {
		al, err := a.Allocate(planOwner(i), n)
		p := PlannedAllocation{Request: n}
		if err != nil {
			p.Error = err.Error()
		} else {
			p.CPUs = &al.CPUs
			if !al.Withheld.IsEmpty() {
				p.Withheld = &al.Withheld
			}
		}
		res.Allocations = append(res.Allocations, p)
	}
	res.Shared, res.Withheld, res.Reserved = a.Shared(), a.Withheld(), a.Reserved()
	return res, nil
}

func planOwner(i int) string { return "request " + strconv.Itoa(i+1) }
