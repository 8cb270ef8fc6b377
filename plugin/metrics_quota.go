package plugin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coreguard/coreguard/plugin/quota"
)

// quotaCollector says, at scrape time, which containers and pods run with
// their CFS quota lifted or kept, and why: one series per live container
// (and per pod lifted), gone with it. Throttling itself is cAdvisor's
// (container_cpu_cfs_*): these series are what to join it with.
type quotaCollector struct{ m *Metrics }

var (
	quotaLabels = []string{"namespace", "pod", "container", "reason"}
	liftedDesc  = prometheus.NewDesc("coreguard_quota_lifted",
		"1 for each container coreguard runs without CFS quota, with why: pinned (exclusive cores), cfs-bug (cfsQuota: auto on a kernel with the bug), cfs-quota-clear (cfsQuota: clear).",
		quotaLabels, nil)
	keptDesc = prometheus.NewDesc("coreguard_quota_kept",
		"1 for each container whose CFS quota coreguard leaves as kubelet set it, with why: no-cfs-bug (cfsQuota: auto on a kernel without the bug), cfs-quota-keep (cfsQuota: keep). cfsQuota: clear would lift it.",
		quotaLabels, nil)
	podLiftedDesc = prometheus.NewDesc("coreguard_pod_quota_lifted",
		"1 for each pod whose cgroup coreguard runs without CFS quota (one of its containers runs without), with the reason of the first such container.",
		[]string{"namespace", "pod", "reason"}, nil)
)

func (c quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- liftedDesc
	ch <- keptDesc
	ch <- podLiftedDesc
}

func (c quotaCollector) Collect(ch chan<- prometheus.Metric) {
	_, q := c.m.watched()
	if q == nil {
		return
	}
	for _, ctr := range q.Containers() {
		desc := keptDesc
		if ctr.Lifted {
			desc = liftedDesc
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 1, ctr.Namespace, ctr.Pod, ctr.Container, ctr.Reason)
	}
	for _, pod := range q.LiftedPods() {
		ch <- prometheus.MustNewConstMetric(podLiftedDesc, prometheus.GaugeValue, 1, pod.Namespace, pod.Pod, pod.Reason)
	}
}

func (m *Metrics) quotaStats() quota.Stats {
	return quotaStats{m}
}

type quotaStats struct{ m *Metrics }

func (s quotaStats) PodQuotaError()      { s.m.quotaErrors.Inc() }
func (s quotaStats) PodQuotaReasserted() { s.m.quotaReasserted.Inc() }
