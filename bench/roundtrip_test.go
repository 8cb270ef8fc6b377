package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

const syncTimeout = 30 * time.Second

var (
	// guaranteed4 is a Guaranteed container with 4 whole CPUs: coreguard
	// pins it to two whole cores, shrinking the shared pool.
	guaranteed4 = nritest.Resources{RequestMilli: 4000, LimitMilli: 4000}
	// burstable is a shared-pool container.
	burstable = nritest.Resources{RequestMilli: 250, LimitMilli: 2000}
)

var (
	epycOnce sync.Once
	epycTopo *topology.Topology
	epycErr  error
)

// epyc384 is the generated 2×96-core SMT2 topology (384 CPUs, 24 L3
// groups), built once per process.
func epyc384(b *testing.B) *topology.Topology {
	b.Helper()
	epycOnce.Do(func() { epycTopo, epycErr = sysfsgen.BuildShape(sysfsgen.EPYC384) })
	if epycErr != nil {
		b.Fatal(epycErr)
	}
	return epycTopo
}

// side is one runtime with one plugin connected: the floor (no-op) or
// coreguard. Both are hosted alike: an in-process adaptation, the plugin
// in-process on the same stub, over the adaptation's real socket.
type side struct {
	name    string
	rt      *nritest.Runtime
	pod     *api.PodSandbox // the pod the measured containers are created in
	samples []time.Duration
}

// startSide hosts a runtime and connects the plugin run starts on it.
func startSide(b *testing.B, name string, run func(ctx context.Context, socket string) error) *side {
	b.Helper()
	s := &side{name: name, rt: nritest.StartDirect(b)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, s.rt.Socket) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				b.Errorf("%s plugin: %v", name, err)
			}
		case <-time.After(syncTimeout):
			b.Errorf("%s plugin did not stop", name)
		}
	})
	s.rt.WaitSync(syncTimeout)
	return s
}

// runCoreguard runs coreguard in-process as the binary would with its
// default configuration on the generated 384-CPU EPYC topology: info-level
// text logging (to io.Discard: the formatting is paid, the I/O is not) and
// metrics on.
func runCoreguard(b *testing.B, cfgYAML string) func(ctx context.Context, socket string) error {
	b.Helper()
	topo := epyc384(b)
	// No host state: an empty dir is no cgroup tree (pod quotas untouched)
	// and holds no kubelet checkpoint.
	empty := b.TempDir()
	cfg, err := config.Parse([]byte(cfgYAML + "\ncgroupRoot: " + empty + "\nkubeletRootDir: " + empty + "\n"))
	if err != nil {
		b.Fatal(err)
	}
	return func(ctx context.Context, socket string) error {
		log := logrus.New()
		log.SetOutput(io.Discard)
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
		p, err := plugin.New(plugin.Options{Socket: socket, Config: cfg, Topology: topo, Log: log,
			Metrics: plugin.NewMetrics(), KernelRelease: "5.10.0", RuntimeNRI: nritest.NRIVersion})
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}
}

// populate creates n running shared-pool (burstable) containers, one per
// pod, through the adaptation, so the plugin knows them.
func (s *side) populate(b *testing.B, n int) {
	b.Helper()
	for i := range n {
		pod := s.rt.RunPod(nritest.PodSpec{Name: fmt.Sprint("bg", i), QoS: "burstable"})
		if _, err := s.rt.Create(pod, "app", burstable); err != nil {
			b.Fatalf("%s: populating: %v", s.name, err)
		}
	}
}

// once creates one container, records the adaptation's round trip, and
// stops and removes it again so every call sees the same state.
func (s *side) once(b *testing.B, res nritest.Resources) {
	id, rtt, err := s.rt.CreateTimed(s.pod, "measured", res)
	if err != nil {
		b.Fatalf("%s: create: %v", s.name, err)
	}
	s.samples = append(s.samples, rtt)
	s.rt.Stop(id)
	s.rt.Remove(id)
}

// BenchmarkCreate measures the CreateContainer round trip through the
// adaptation for three plugins, each on its own runtime, called in turn
// within one loop so all see the same machine noise: the floor (Noop),
// the carrier (Carrier: the no-op answering with the same adjustment —
// cpuset, CFS quota, annotations — and updates coreguard returns,
// precomputed) and coreguard. It reports
// medians, 99th percentiles and the ratios. ns/op is one iteration: the
// three creations plus their untimed stops and removals.
//
// pinned/running=N creates a Guaranteed 4-CPU container while N burstable
// containers run in the shared pool: coreguard pins it and returns an
// update for each of the N. shared/running=N creates a burstable one.
func BenchmarkCreate(b *testing.B) {
	for _, tc := range []struct {
		kind    string
		running int
		qos     string
		res     nritest.Resources
		config  string
	}{
		{"pinned", 0, "guaranteed", guaranteed4, ""},
		{"pinned", 100, "guaranteed", guaranteed4, ""},
		{"pinned", 500, "guaranteed", guaranteed4, ""},
		// sharedPoolUpdates: after-response: the 500 updates follow the
		// creation's answer instead of riding in it.
		{"pinned-after", 500, "guaranteed", guaranteed4, "sharedPoolUpdates: after-response"},
		{"shared", 500, "burstable", burstable, ""},
	} {
		b.Run(fmt.Sprintf("%s/running=%d", tc.kind, tc.running), func(b *testing.B) {
			carrier := &Carrier{}
			floor := startSide(b, "noop", RunNoop)
			carry := startSide(b, "carrier", func(ctx context.Context, socket string) error {
				return RunCarrier(ctx, socket, carrier)
			})
			cg := startSide(b, "coreguard", runCoreguard(b, tc.config))
			sides := []*side{floor, carry, cg}
			for _, s := range sides {
				s.populate(b, tc.running)
				s.pod = s.rt.RunPod(nritest.PodSpec{Name: "measured", QoS: tc.qos})
			}
			// The carrier answers what coreguard answered to the same call.
			ans := probe(b, cg, tc.res)
			var moved []string
			if ans.updated > 0 && tc.config == "" {
				moved = ids(carry.rt)
			}
			carrier.Set(ans.cpus, ans.quota, ans.annotations, moved, ans.shared)
			// With after-response the updates are not part of the answer (the
			// probe may or may not see them land): the carrier sends none.
			if got := probe(b, carry, tc.res); (tc.config == "" && got.updated != ans.updated) || got.cpus != ans.cpus ||
				(got.quota == nil) != (ans.quota == nil) {
				b.Fatalf("carrier answers %+v, coreguard %+v", got, ans)
			}
			for _, s := range sides {
				s.samples = make([]time.Duration, 0, b.N)
				s.once(b, tc.res) // warm up connections and caches
				s.samples = s.samples[:0]
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Rotate who goes first, so none always runs right after
				// another's garbage.
				for k := range sides {
					sides[(i+k)%len(sides)].once(b, tc.res)
				}
			}
			b.StopTimer()
			fp50, fp99 := percentiles(floor.samples)
			kp50, kp99 := percentiles(carry.samples)
			cp50, cp99 := percentiles(cg.samples)
			b.ReportMetric(float64(fp50.Nanoseconds()), "floor-p50-ns")
			b.ReportMetric(float64(fp99.Nanoseconds()), "floor-p99-ns")
			b.ReportMetric(float64(kp50.Nanoseconds()), "carrier-p50-ns")
			b.ReportMetric(float64(kp99.Nanoseconds()), "carrier-p99-ns")
			b.ReportMetric(float64(cp50.Nanoseconds()), "cg-p50-ns")
			b.ReportMetric(float64(cp99.Nanoseconds()), "cg-p99-ns")
			b.ReportMetric(float64(cp50)/float64(fp50), "ratio-p50")
			b.ReportMetric(float64(cp99)/float64(fp99), "ratio-p99")
			b.ReportMetric(float64(kp50)/float64(fp50), "carrier-ratio-p50")
			b.ReportMetric(float64(cp50)/float64(kp50), "cg/carrier-p50")
			b.ReportMetric(float64(ans.updated), "updates")
		})
	}
}

// answer is what a creation got: the container's cpuset, CFS quota when
// the plugin changed it, and annotations, how many running containers it
// moved and to which cpuset.
type answer struct {
	cpus        string
	quota       *int64
	annotations map[string]string
	updated     int
	shared      string
}

// probe creates one container on s, stops and removes it, and returns
// what the plugin answered. It also checks the scenario is what it says:
// a pinned creation moves every running shared container, a shared one
// moves none.
func probe(b *testing.B, s *side, res nritest.Resources) answer {
	b.Helper()
	before := map[string]string{}
	for _, c := range s.rt.Containers() {
		before[c.Id] = c.GetLinux().GetResources().GetCpu().GetCpus()
	}
	id, err := s.rt.Create(s.pod, "probe", res)
	if err != nil {
		b.Fatal(err)
	}
	c := s.rt.Container(id)
	cpu := c.GetLinux().GetResources().GetCpu()
	ans := answer{cpus: cpu.GetCpus(), annotations: c.Annotations}
	if q := cpu.GetQuota(); q != nil && q.GetValue() != res.Linux().GetCpu().GetQuota().GetValue() {
		v := q.GetValue()
		ans.quota = &v
	}
	for _, c := range s.rt.Containers() {
		now := c.GetLinux().GetResources().GetCpu().GetCpus()
		if was, ok := before[c.Id]; ok && was != now {
			ans.updated++
			ans.shared = now
		}
	}
	s.rt.Stop(id)
	s.rt.Remove(id)
	return ans
}

// ids returns the IDs of the runtime's running containers.
func ids(rt *nritest.Runtime) []string {
	var out []string
	for _, c := range rt.Containers() {
		out = append(out, c.Id)
	}
	return out
}

// percentiles returns the median and the 99th percentile (nearest rank).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return rank(0.50), rank(0.99)
}
