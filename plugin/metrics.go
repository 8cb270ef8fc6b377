package plugin

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coreguard/coreguard/plugin/admission"
	"github.com/coreguard/coreguard/plugin/pinning"
	"github.com/coreguard/coreguard/plugin/quota"
)

// Metrics are coreguard's Prometheus metrics. They are always collected;
// the configuration's metricsAddress decides whether they are served.
type Metrics struct {
	registry  *prometheus.Registry
	latency   *prometheus.HistogramVec
	failures  *prometheus.CounterVec
	fallbacks prometheus.Counter
	rejected  *prometheus.CounterVec
	audited   *prometheus.CounterVec

	quotaErrors    prometheus.Counter
	connected      prometheus.Gauge
	cfsBug         *prometheus.GaugeVec
	pinning        prometheus.Gauge
	unstarted      prometheus.Counter
	configRejected prometheus.Gauge

	mu     sync.Mutex
	pinner *pinning.Pinner
	quota  *quota.Duty
	addr   string       // where /metrics is served ("" = not served)
	srv    *http.Server // serving addr
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
			Help: "Exclusive CPU requests that could not be met, by reason (exhausted, odd-request, shared-pool-empty).",
		}, []string{"reason"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coreguard_shared_fallbacks_total",
			Help: "Containers that qualified for exclusive CPUs but ran in the shared pool (onExhaustion: shared).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coreguard_admission_rejections_total",
			Help: "Containers refused by admission, by reason (privileged, hostPID, hostIPC, hostNetwork) and namespace.",
		}, []string{"reason", "namespace"}),
		audited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coreguard_admission_audit_total",
			Help: "Containers admission would refuse in enforce mode, seen in audit mode, by reason and namespace.",
		}, []string{"reason", "namespace"}),
	}
	m.quotaErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coreguard_pod_quota_errors_total",
		Help: "Pod cgroups whose CFS quota coreguard could not clear.",
	})
	m.connected = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coreguard_runtime_connected",
		Help: "1 while coreguard is registered with the container runtime over NRI, else 0: alert on 0, since containers are created unchecked then (unless the runtime requires coreguard).",
	})
	m.cfsBug = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "coreguard_cfs_bug_verdict",
		Help: "1 for the running kernel's CFS throttling bug verdict (buggy, not-buggy, unknown), with the rule that decided it: cfsQuota: auto lifts CFS quotas when the verdict is buggy.",
	}, []string{"kernel", "verdict", "rule"})
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
	m.registry.MustRegister(m.latency, m.failures, m.fallbacks, m.rejected, m.audited, m.quotaErrors, m.connected, m.cfsBug, m.pinning, m.unstarted, m.configRejected,
		poolCollector{m}, throttleCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// listen serves /metrics on addr, the metricsAddress in force: a new
// address replaces the old listener, "" stops serving. It fails only when
// addr cannot be listened on, and then changes nothing. It returns what
// changed, for the log: the address now listened on ("127.0.0.1:0" becomes
// the port taken) and the one given up.
func (m *Metrics) listen(addr string) (started, stopped string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if addr == m.addr {
		return "", "", nil
	}
	var srv *http.Server
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return "", "", err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		started = l.Addr().String()
	}
	if m.srv != nil {
		_ = m.srv.Close()
		stopped = m.addr
	}
	m.addr, m.srv = addr, srv
	return started, stopped, nil
}

// setVerdict records the CFS-bug verdict in force.
func (m *Metrics) setVerdict(release, verdict, rule string) {
	m.cfsBug.Reset()
	m.cfsBug.WithLabelValues(release, verdict, rule).Set(1)
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

func (m *Metrics) quotaStats() quota.Stats {
	return quotaStats{m}
}

type quotaStats struct{ m *Metrics }

func (s quotaStats) PodQuotaError() { s.m.quotaErrors.Inc() }

// throttleCollector exports each container's CFS counters under cAdvisor's
// names, so dashboards built for cAdvisor read them; read at scrape time.
type throttleCollector struct{ m *Metrics }

var (
	throttleLabels  = []string{"namespace", "pod", "container"}
	periodsDesc     = prometheus.NewDesc("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", throttleLabels, nil)
	throttledDesc   = prometheus.NewDesc("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", throttleLabels, nil)
	throttledSecond = prometheus.NewDesc("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", throttleLabels, nil)
)

func (c throttleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- periodsDesc
	ch <- throttledDesc
	ch <- throttledSecond
}

func (c throttleCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	q := c.m.quota
	c.m.mu.Unlock()
	if q == nil {
		return
	}
	for _, t := range q.Throttling() {
		ch <- prometheus.MustNewConstMetric(periodsDesc, prometheus.CounterValue, float64(t.Periods), t.Namespace, t.Pod, t.Container)
		ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, float64(t.Throttled), t.Namespace, t.Pod, t.Container)
		ch <- prometheus.MustNewConstMetric(throttledSecond, prometheus.CounterValue, t.ThrottledTime.Seconds(), t.Namespace, t.Pod, t.Container)
	}
}

func (m *Metrics) pinningStats() pinning.Stats {
	return pinStats{m}
}

func (m *Metrics) admissionStats() admission.Stats {
	return admStats{m}
}

type admStats struct{ m *Metrics }

func (s admStats) Rejected(k admission.Kind, ns string) {
	s.m.rejected.WithLabelValues(string(k), ns).Inc()
}
func (s admStats) Audited(k admission.Kind, ns string) {
	s.m.audited.WithLabelValues(string(k), ns).Inc()
}

type pinStats struct{ m *Metrics }

func (s pinStats) AllocationFailed(reason string) { s.m.failures.WithLabelValues(reason).Inc() }
func (s pinStats) SharedFallback()                { s.m.fallbacks.Inc() }

// poolCollector reads the pinning state at scrape time.
type poolCollector struct{ m *Metrics }

var (
	coresDesc = prometheus.NewDesc("coreguard_cores",
		"Physical cores by state: total (online), exclusive (held by pinned containers), shared (all threads in the shared pool), withheld (a thread withheld from everyone).",
		[]string{"state"}, nil)
	cpusDesc = prometheus.NewDesc("coreguard_cpus",
		"Logical CPUs by pool: exclusive, shared, withheld, reserved (reserved CPUs are part of the shared pool).",
		[]string{"pool"}, nil)
	exclusiveDesc = prometheus.NewDesc("coreguard_exclusive_containers",
		"Containers holding exclusive CPUs.", nil, nil)
	sharedDesc = prometheus.NewDesc("coreguard_shared_containers",
		"Containers running in the shared pool.", nil, nil)
	pendingDesc = prometheus.NewDesc("coreguard_unstarted_containers",
		"Containers coreguard answered that have not started yet: what they hold is given back after startTimeout.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- coresDesc
	ch <- cpusDesc
	ch <- exclusiveDesc
	ch <- sharedDesc
	ch <- pendingDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	p := c.m.pinner
	c.m.mu.Unlock()
	if p == nil {
		return
	}
	s := p.Snapshot()
	topo := p.Topology()
	var exclusive, shared, withheld int
	for _, core := range topo.Cores {
		switch {
		case core.CPUs.Intersects(s.Withheld):
			withheld++
		case core.CPUs.IsSubsetOf(s.Exclusive):
			exclusive++
		case core.CPUs.IsSubsetOf(s.Shared):
			shared++
		}
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(coresDesc, len(topo.Cores), "total")
	gauge(coresDesc, exclusive, "exclusive")
	gauge(coresDesc, shared, "shared")
	gauge(coresDesc, withheld, "withheld")
	gauge(cpusDesc, s.Exclusive.Size(), "exclusive")
	gauge(cpusDesc, s.Shared.Size(), "shared")
	gauge(cpusDesc, s.Withheld.Size(), "withheld")
	gauge(cpusDesc, s.Reserved.Size(), "reserved")
	gauge(exclusiveDesc, len(s.Allocations))
	gauge(sharedDesc, s.SharedContainers)
	gauge(pendingDesc, s.Unstarted)
}
