package plugin

import (
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/plugin/quota"
)

// Metrics are coreguard's Prometheus metrics. They are always collected;
// the configuration's metricsAddress decides whether they are served.
//
// They add to what kubelet's cAdvisor exports rather than repeat it: no
// series is named container_* or machine_*, and CFS throttling counters
// are cAdvisor's alone; coreguard says which quotas it lifted or kept and
// why, so they can be joined (docs/metrics.md). Every series whose label
// values are known in advance exists from the start, at 0.
type Metrics struct {
	registry  *prometheus.Registry
	latency   *prometheus.HistogramVec
	failures  *prometheus.CounterVec
	fallbacks prometheus.Counter
	admission *admissionCounters

	quotaErrors     prometheus.Counter
	quotaReasserted prometheus.Counter
	connected       prometheus.Gauge
	cfsBug          *prometheus.GaugeVec
	buildInfo       *prometheus.GaugeVec
	pinning         prometheus.Gauge
	unstarted       prometheus.Counter
	configRejected  prometheus.Gauge
	cgroupWrites    *prometheus.CounterVec

	mu     sync.Mutex
	pinner *pinning.Pinner
	quota  *quota.Duty
	server endpoint // where /metrics is served (the configuration's metricsAddress)
}

// nriEvents are the NRI handlers coreguard times: their latency series
// exist before their first call.
var nriEvents = []string{
	"Configure", "Synchronize",
	"RunPodSandbox", "UpdatePodSandbox", "PostUpdatePodSandbox", "RemovePodSandbox",
	"CreateContainer", "StartContainer", "PostStartContainer", "UpdateContainer", "StopContainer", "RemoveContainer",
}

// NewMetrics registers coreguard's metrics on a private registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coreguard_nri_handler_duration_seconds",
			Help: "Time coreguard spent in each NRI handler.",
			// Handlers run on the container-creation path in microseconds
			// to a few milliseconds; the runtime's timeout is 2 s.
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1},
		}, []string{"event"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coreguard_allocation_failures_total",
			Help: "Exclusive CPU requests that could not be met, by reason (exhausted, odd-request, shared-pool-empty, other).",
		}, []string{"reason"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coreguard_shared_fallbacks_total",
			Help: "Containers that qualified for exclusive CPUs but ran in the shared pool (onExhaustion: shared).",
		}),
		admission: newAdmissionCounters(),
	}
	m.quotaErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coreguard_pod_quota_errors_total",
		Help: "Pod cgroups whose CFS quota coreguard could not clear.",
	})
	m.quotaReasserted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coreguard_pod_quota_reasserted_total",
		Help: "Pod CFS quotas kubelet wrote back after coreguard lifted them, which coreguard lifted again (checked every 10 s).",
	})
	m.connected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coreguard_runtime_connected",
		Help: "1 while coreguard is registered with the container runtime over NRI, else 0: alert on 0, since containers are created unchecked then (unless the runtime requires coreguard).",
	})
	m.cfsBug = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "coreguard_kernel_cfs_bug",
		Help: "1 while coreguard takes the running kernel to have the CFS throttling bug (cfsQuota: auto then lifts every quota), else 0; verdict is buggy, not-buggy or unknown (kernel.unknown decides), rule the table row that decided (none when none did).",
	}, []string{"verdict", "rule"})
	m.buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "coreguard_build_info",
		Help: "Always 1: the coreguard binary's version, the Go version that built it, and its platform.",
	}, []string{"version", "goversion", "goos", "goarch"})
	m.pinning = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coreguard_pinning_enabled",
		Help: "1 while coreguard pins containers to exclusive cores; 0 while kubelet's CPU manager runs the static policy on this node and owns cpusets (coreguard's log says why).",
	})
	m.unstarted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coreguard_unstarted_released_total",
		Help: "Containers coreguard answered that did not start within startTimeout (their creation failed after coreguard's answer): their exclusive cores and place in the shared pool were given back.",
	})
	m.configRejected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coreguard_config_rejected",
		Help: "1 while coreguard runs on its last good configuration because the one it was given was refused (its log says why), else 0: alert on 1.",
	})
	m.cgroupWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coreguard_cpuset_writes_total",
		Help: "Shared containers' cgroup cpuset.cpus files coreguard wrote itself (sharedPoolUpdates: cgroup-first), by result (ok, failed); cgroups not there yet or any more are not counted.",
	}, []string{"result"})
	m.registry.MustRegister(m.latency, m.failures, m.fallbacks, m.admission.rejected, m.admission.audited,
		m.quotaErrors, m.quotaReasserted, m.connected, m.cfsBug, m.buildInfo, m.pinning, m.unstarted, m.configRejected, m.cgroupWrites,
		poolCollector{m}, quotaCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.initLabelled()
	return m
}

// initLabelled creates, at 0, every series whose label values are known
// now, so the first event is a rise Prometheus sees (rate and increase
// miss a series born at 1).
func (m *Metrics) initLabelled() {
	for _, e := range nriEvents {
		m.latency.WithLabelValues(e)
	}
	for _, r := range pinning.FailureReasons {
		m.failures.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		m.cgroupWrites.WithLabelValues(r)
	}
}

// handler serves /metrics.
func (m *Metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	return mux
}

// setVerdict records the CFS-bug verdict in force: buggy is what
// cfsQuota: auto acts on.
func (m *Metrics) setVerdict(buggy bool, verdict, rule string) {
	if rule == "" {
		rule = "none"
	}
	m.cfsBug.Reset()
	setFlag(m.cfsBug.WithLabelValues(verdict, rule), buggy)
}

// setVersion records the binary's version ("" reads as unknown).
func (m *Metrics) setVersion(version string) {
	if version == "" {
		version = "unknown"
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, runtime.Version(), runtime.GOOS, runtime.GOARCH).Set(1)
}

// setConfigRejected records whether the configuration given was refused
// (and the last good one runs).
func (m *Metrics) setConfigRejected(rejected bool) { setFlag(m.configRejected, rejected) }

// setPinning records whether coreguard pins.
func (m *Metrics) setPinning(on bool) { setFlag(m.pinning, on) }

// setFlag sets a 0/1 gauge.
func setFlag(g prometheus.Gauge, on bool) {
	if on {
		g.Set(1)
	} else {
		g.Set(0)
	}
}

// Registry exposes the registry, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) setConnected(up bool) { setFlag(m.connected, up) }

func (m *Metrics) observe(event string, start time.Time) {
	m.latency.WithLabelValues(event).Observe(time.Since(start).Seconds())
}

func (m *Metrics) watch(p *pinning.Pinner, q *quota.Duty) {
	m.mu.Lock()
	m.pinner, m.quota = p, q
	m.mu.Unlock()
}

// watched returns the duty states the collectors read (nil before the
// first configuration).
func (m *Metrics) watched() (*pinning.Pinner, *quota.Duty) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pinner, m.quota
}

func (m *Metrics) pinningStats() pinning.Stats {
	return pinStats{m}
}

func (m *Metrics) directStats() pinning.DirectStats {
	return pinStats{m}
}

type pinStats struct{ m *Metrics }

func (s pinStats) AllocationFailed(reason string) { s.m.failures.WithLabelValues(reason).Inc() }
func (s pinStats) SharedFallback()                { s.m.fallbacks.Inc() }
func (s pinStats) CgroupWrites(ok, failed int) {
	s.m.cgroupWrites.WithLabelValues("ok").Add(float64(ok))
	s.m.cgroupWrites.WithLabelValues("failed").Add(float64(failed))
}
