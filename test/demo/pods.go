package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/coreguard/coreguard/test/e2e/harness"
)

// podSpec is one demo pod of one container.
type podSpec struct {
	Name string
	Res  harness.Resources
}

// result is what a pod got, read from its container's cgroup files.
type result struct {
	Spec  podSpec
	QoS   harness.QoS
	Cpus  string // cpuset.cpus
	Quota int64  // cpu.cfs_quota_us, -1 unlimited
	Err   error  // creation refused (by coreguard) or failed
	pod   *harness.Pod
	ctr   *harness.Container
}

// demoPods are the pods the demo runs, in order: a burstable pod first,
// so the table shows the shared pool it lives in shrinking, then an odd
// Guaranteed request, then (when the machine has room) an even one.
//
// On a machine of one core coreguard gives the odd request the whole core
// only while no shared container runs, so there the odd request runs
// alone, and the burstable pod comes once it has left (afterwards).
func demoPods(cpus, threadsPerCore int) (pods []podSpec, afterwards []podSpec) {
	web := podSpec{"web (burstable)", harness.Resources{CPURequest: 250, CPULimit: 1000, MemLimit: 64 << 20}}
	odd := podSpec{"odd-guaranteed", harness.Resources{CPULimit: 1000, MemLimit: 64 << 20}}
	if threadsPerCore > 1 && cpus <= threadsPerCore {
		return []podSpec{odd}, []podSpec{web}
	}
	pods = []podSpec{web, odd}
	if cpus >= 6 && threadsPerCore > 1 {
		pods = append(pods, podSpec{"even-guaranteed", harness.Resources{CPULimit: int64(threadsPerCore) * 1000, MemLimit: 64 << 20}})
	}
	return pods, nil
}

// startPod starts the pod's sandbox and container as kubelet would.
func startPod(ctx context.Context, rt *harness.Runtime, s podSpec, i int) result {
	r := result{Spec: s, QoS: harness.QoSOf(s.Res)}
	pod, err := rt.RunPod(ctx, harness.PodOptions{Name: fmt.Sprintf("demo-%d", i), Containers: []harness.Resources{s.Res}})
	if err != nil {
		r.Err = err
		return r
	}
	r.pod = pod
	r.ctr, r.Err = pod.RunContainer(ctx, harness.ContainerOptions{Name: "main", Resources: s.Res})
	return r
}

// read fills in what the kernel enforces now.
func (r *result) read(ctx context.Context) {
	if r.Err != nil || r.ctr == nil {
		return
	}
	st, err := r.ctr.CPU(ctx)
	if err != nil {
		r.Err = err
		return
	}
	r.Cpus, r.Quota = st.Cpus, st.Quota
}

// request prints the pod spec's CPU request/limit like kubectl would.
func request(res harness.Resources) string {
	req, lim := res.CPURequest, res.CPULimit
	if req == 0 {
		req = lim
	}
	if req == lim {
		return "cpu: " + milli(req)
	}
	return "cpu: " + milli(req) + ", limit " + milli(lim)
}

func milli(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// kubelet says what kubelet's static CPU manager with full-pcpus-only
// would do with the pod.
func kubelet(qos harness.QoS, res harness.Resources, threadsPerCore int) string {
	if qos != harness.Guaranteed || res.CPULimit%1000 != 0 {
		return "shared pool"
	}
	n := int(res.CPULimit / 1000)
	if n%threadsPerCore != 0 {
		return fmt.Sprintf("rejects: SMTAlignmentError (%d not a multiple of %d)", n, threadsPerCore)
	}
	return fmt.Sprintf("%d exclusive CPUs", n)
}
