package alloc

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/coreguard/coreguard/cpuset"
)

// epyc384 is the benchmark machine of the allocator issue: 2 sockets × 96
// cores × SMT2 = 384 CPUs in 24 L3 groups of 8 cores, siblings n and n+192.
var epyc384 = shape{sockets: 2, numaPerSocket: 1, l3PerNUMA: 12, coresPerL3: 8, threads: 2}

// churned returns an allocator on epyc384 after 1000 random allocations and
// releases, so the free cores are fragmented as on a busy node.
func churned(b *testing.B) *Allocator {
	a, err := New(epyc384.build(b), Options{Reserved: cpuset.New(0, 192)})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var owners []string
	for i := 0; i < 1000; i++ {
		if len(owners) > 0 && (rng.IntN(2) == 0 || a.Free().Size() < 100) {
			k := rng.IntN(len(owners))
			if _, err := a.Release(owners[k]); err != nil {
				b.Fatal(err)
			}
			owners = append(owners[:k], owners[k+1:]...)
			continue
		}
		owner := fmt.Sprint("c", i)
		if _, err := a.Allocate(owner, 1+rng.IntN(16)); err == nil {
			owners = append(owners, owner)
		}
	}
	return a
}

// BenchmarkAllocate times one 4-CPU allocation on the churned 384-CPU node.
func BenchmarkAllocate(b *testing.B) {
	a := churned(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Allocate("bench", 4); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_, _ = a.Release("bench")
		b.StartTimer()
	}
}

// BenchmarkRelease times one release of a 4-CPU allocation.
func BenchmarkRelease(b *testing.B) {
	a := churned(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if _, err := a.Allocate("bench", 4); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := a.Release("bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineFirstFit is the floor to read the two above against: the
// least an allocator can do on the same state — scan for the first two free
// cores and build their set — with no packing at all.
func BenchmarkBaselineFirstFit(b *testing.B) {
	a := churned(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var got cpuset.Builder
		n := 0
		for ci, u := range a.use {
			if u == nil && n < 2 {
				got.AddSet(a.topo.Cores[ci].CPUs)
				n++
			}
		}
		if got.Set().Size() != 4 {
			b.Fatal("baseline found no free cores")
		}
	}
}
