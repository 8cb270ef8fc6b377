package plugin

import (
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/plugin/admission"
)

// admissionCounters count admission's refusals (enforce) and would-be
// refusals (audit) by reason and namespace. Reasons are known in advance,
// namespaces are not: the series of every reason exist at 0 for each
// namespace with a pod on this node, in the counter of the mode in force.
// When a namespace's last pod goes, its series that never counted anything
// go too, so namespaces that come and go do not pile up; a series that
// counted stays while coreguard runs.
type admissionCounters struct {
	rejected, audited *prometheus.CounterVec

	mu      sync.Mutex
	mode    config.AdmissionMode
	podNS   map[string]string // pod sandbox ID → namespace
	nsPods  map[string]int    // namespace → pods on this node
	present map[admissionSeries]bool
	counted map[admissionSeries]bool // rose above 0: kept
}

// admissionSeries is one series of rejected or audited.
type admissionSeries struct {
	audit bool
	kind  admission.Kind
	ns    string
}

func newAdmissionCounters() *admissionCounters {
	return &admissionCounters{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coreguard_admission_rejections_total",
			Help: "Containers refused by admission (mode: enforce), by reason (privileged, hostPID, hostIPC, hostNetwork) and namespace. A container refused for two reasons counts under both.",
		}, []string{"reason", "namespace"}),
		audited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coreguard_admission_audit_total",
			Help: "Containers admission would refuse in enforce mode, seen in audit mode, by reason and namespace.",
		}, []string{"reason", "namespace"}),
		podNS: map[string]string{}, nsPods: map[string]int{},
		present: map[admissionSeries]bool{}, counted: map[admissionSeries]bool{},
	}
}

// setMode makes the counter of mode the one whose series exist at 0.
func (a *admissionCounters) setMode(mode config.AdmissionMode) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode = mode
	a.refresh()
}

// podStarted notes a pod on this node.
func (a *admissionCounters) podStarted(pod *api.PodSandbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addPod(pod) {
		a.refresh()
	}
}

// podRemoved notes a pod gone from this node.
func (a *admissionCounters) podRemoved(pod *api.PodSandbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ns, ok := a.podNS[pod.GetId()]
	if !ok {
		return
	}
	delete(a.podNS, pod.GetId())
	if a.nsPods[ns]--; a.nsPods[ns] == 0 {
		delete(a.nsPods, ns)
		a.refresh()
	}
}

// syncPods replaces the pods known with the runtime's.
func (a *admissionCounters) syncPods(pods []*api.PodSandbox) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.podNS, a.nsPods = map[string]string{}, map[string]int{}
	for _, pod := range pods {
		a.addPod(pod)
	}
	a.refresh()
}

// addPod reports whether the pod is the first of its namespace.
func (a *admissionCounters) addPod(pod *api.PodSandbox) bool {
	if _, ok := a.podNS[pod.GetId()]; ok {
		return false
	}
	ns := pod.GetNamespace()
	a.podNS[pod.GetId()] = ns
	a.nsPods[ns]++
	return a.nsPods[ns] == 1
}

// refresh makes the series at 0 those of the mode's counter for the
// namespaces with pods, dropping others that never counted.
func (a *admissionCounters) refresh() {
	want := map[admissionSeries]bool{}
	if a.mode == config.AdmissionEnforce || a.mode == config.AdmissionAudit {
		for ns := range a.nsPods {
			for _, k := range admission.Kinds {
				want[admissionSeries{a.mode == config.AdmissionAudit, k, ns}] = true
			}
		}
	}
	for s := range a.present {
		if !want[s] && !a.counted[s] {
			a.vec(s.audit).DeleteLabelValues(string(s.kind), s.ns)
			delete(a.present, s)
		}
	}
	for s := range want {
		if !a.present[s] {
			a.vec(s.audit).WithLabelValues(string(s.kind), s.ns)
			a.present[s] = true
		}
	}
}

func (a *admissionCounters) vec(audit bool) *prometheus.CounterVec {
	if audit {
		return a.audited
	}
	return a.rejected
}

// count adds one to a series, which then stays.
func (a *admissionCounters) count(s admissionSeries) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.vec(s.audit).WithLabelValues(string(s.kind), s.ns).Inc()
	a.present[s], a.counted[s] = true, true
}

// Rejected and Audited are admission.Stats.
func (a *admissionCounters) Rejected(k admission.Kind, ns string) {
	a.count(admissionSeries{false, k, ns})
}

func (a *admissionCounters) Audited(k admission.Kind, ns string) {
	a.count(admissionSeries{true, k, ns})
}
