package harness

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// QoS is the Kubernetes pod QoS class.
type QoS string

const (
	Guaranteed QoS = "Guaranteed"
	Burstable  QoS = "Burstable"
	BestEffort QoS = "BestEffort"
)

// kubelet's constants (pkg/kubelet/cm): shares per CPU, minimum shares,
// CFS period and minimum quota.
const (
	SharesPerCPU  = 1024
	MinShares     = 2
	MaxShares     = 262144
	CFSPeriod     = 100000
	MinCFSQuota   = 1000
	guaranteedOOM = -997
	bestEffortOOM = 1000
)

// Resources are one container's requests and limits as in a pod spec.
// Zero means unset. A request left unset with a limit set defaults to the
// limit, as the API server does.
type Resources struct {
	CPURequest int64 // millicores
	CPULimit   int64 // millicores
	MemRequest int64 // bytes
	MemLimit   int64 // bytes
}

func (r Resources) defaulted() Resources {
	if r.CPURequest == 0 {
		r.CPURequest = r.CPULimit
	}
	if r.MemRequest == 0 {
		r.MemRequest = r.MemLimit
	}
	return r
}

// QoSOf classifies a pod from its containers' resources the way the API does.
func QoSOf(containers ...Resources) QoS {
	set, guaranteed := false, true
	for _, c := range containers {
		c = c.defaulted()
		if c.CPURequest != 0 || c.MemRequest != 0 || c.CPULimit != 0 || c.MemLimit != 0 {
			set = true
		}
		if c.CPULimit == 0 || c.MemLimit == 0 || c.CPURequest != c.CPULimit || c.MemRequest != c.MemLimit {
			guaranteed = false
		}
	}
	switch {
	case !set:
		return BestEffort
	case guaranteed && len(containers) > 0:
		return Guaranteed
	default:
		return Burstable
	}
}

// MilliCPUToShares is kubelet's request -> cpu.shares conversion.
func MilliCPUToShares(milli int64) int64 {
	if milli == 0 {
		return MinShares
	}
	s := milli * SharesPerCPU / 1000
	return min(max(s, MinShares), MaxShares)
}

// MilliCPUToQuota is kubelet's limit -> cpu.cfs_quota_us conversion.
func MilliCPUToQuota(milli, period int64) int64 {
	if milli == 0 {
		return 0
	}
	return max(milli*period/1000, MinCFSQuota)
}

// LinuxResources is what kubelet puts in CreateContainer's
// Linux.Resources: shares always, quota and period only with a CPU limit.
func LinuxResources(r Resources) *runtimeapi.LinuxContainerResources {
	r = r.defaulted()
	lr := &runtimeapi.LinuxContainerResources{
		CpuShares:          MilliCPUToShares(r.CPURequest),
		MemoryLimitInBytes: r.MemLimit,
	}
	if r.CPULimit != 0 {
		lr.CpuPeriod = CFSPeriod
		lr.CpuQuota = MilliCPUToQuota(r.CPULimit, CFSPeriod)
	}
	return lr
}

// PodTotals sums a pod's containers the way kubelet sizes the pod cgroup
// and the sandbox's Linux.Resources: limits count only when every
// container has one (otherwise the pod is unlimited: 0 here, -1 in cgroups).
func PodTotals(containers []Resources) Resources {
	var t Resources
	allCPU, allMem := len(containers) > 0, len(containers) > 0
	for _, c := range containers {
		c = c.defaulted()
		t.CPURequest += c.CPURequest
		t.MemRequest += c.MemRequest
		t.CPULimit += c.CPULimit
		t.MemLimit += c.MemLimit
		allCPU = allCPU && c.CPULimit != 0
		allMem = allMem && c.MemLimit != 0
	}
	if !allCPU {
		t.CPULimit = 0
	}
	if !allMem {
		t.MemLimit = 0
	}
	return t
}

// OOMScoreAdj is kubelet's oom_score_adj for a container (memCapacity is
// the node's memory in bytes).
func OOMScoreAdj(qos QoS, r Resources, memCapacity int64) int64 {
	switch qos {
	case Guaranteed:
		return guaranteedOOM
	case BestEffort:
		return bestEffortOOM
	}
	r = r.defaulted()
	adj := int64(1000)
	if memCapacity > 0 {
		adj = 1000 - 1000*r.MemRequest/memCapacity
	}
	// Burstable must stay above Guaranteed and below BestEffort.
	return min(max(adj, 1000+guaranteedOOM), bestEffortOOM-1)
}
