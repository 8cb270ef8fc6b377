package sysfsgen

import "github.com/coreguard/coreguard/cpuset"

// Names of the realistic shapes in Shapes.
const (
	IntelHT2S       = "intel-2s-ht"       // 2×20 cores SMT2, siblings n and n+40: 80 CPUs
	EPYC384         = "epyc-2s-384"       // 2×96 cores SMT2, 24 L3 groups of 8 cores, cpu c on core c%192
	HybridAlderLake = "hybrid-8p8e"       // 8 P-cores SMT2 (0-15) + 8 single-thread E-cores (16-23)
	SMT4            = "smt4"              // 16 cores × 4 threads, adjacent (Xeon Phi, POWER)
	SMT8            = "smt8-2s"           // 2×4 cores × 8 threads (POWER), no die ids, no smt/control
	OfflineCPUs     = "offline"           // 8 cores SMT2 linear; CPU 3 and core 14-15 offline
	IsolCPUs        = "isolcpus"          // 8 cores SMT2 split; isolcpus=2-3,10-11
	NoSMT           = "no-smt"            // 8 single-thread cores, SMT not supported
	Interleaved2S   = "interleaved-2s"    // 2×8 cores SMT2, round-robin sockets, cpu0 on package 1, 2 nodes per socket
	SNC2S           = "snc-2s"            // 2×10 cores SMT2, 2 NUMA nodes per socket under one L3 (sub-NUMA clustering)
	MultiDie        = "multi-die"         // 1 socket of 2 dies × 8 cores SMT2, one node and one L3 per die
	MemoryOnlyNodes = "memory-only-nodes" // 2×4 cores SMT2 plus 2 NUMA nodes without CPUs
	NoL3NoNUMA      = "no-l3-no-numa"     // 8 cores, no L3, no node folder, no die ids (arm64-like)
	TwoCPUsOneCore  = "2cpu-1core"        // one core of 2 threads
	TwoCPUsTwoCores = "2cpu-2cores"       // two single-thread cores
)

// Shapes returns the named realistic shapes (a fresh map each call).
func Shapes() map[string]Spec {
	return map[string]Spec{
		IntelHT2S: {Sockets: 2, CoresPerSocket: 20, ThreadsPerCore: 2, Numbering: SMTSplit,
			SMTControl: "on", CacheIDs: true},
		EPYC384: {Sockets: 2, CoresPerSocket: 96, ThreadsPerCore: 2, LLCPerSocket: 12,
			Numbering: SMTSplit, SMTControl: "on", CacheIDs: true},
		HybridAlderLake: {CoresPerSocket: 8, ThreadsPerCore: 2, ECoresPerSocket: 8,
			Numbering: Linear, SMTControl: "on", CacheIDs: true},
		SMT4: {CoresPerSocket: 16, ThreadsPerCore: 4, Numbering: Linear, SMTControl: "on"},
		SMT8: {Sockets: 2, CoresPerSocket: 4, ThreadsPerCore: 8, Numbering: Linear, NoDieID: true},
		OfflineCPUs: {CoresPerSocket: 8, ThreadsPerCore: 2, Numbering: Linear, SMTControl: "on",
			Offline: cpuset.MustParse("3,14-15")},
		IsolCPUs: {CoresPerSocket: 8, ThreadsPerCore: 2, Numbering: SMTSplit, SMTControl: "on",
			Isolated: cpuset.MustParse("2-3,10-11")},
		NoSMT: {CoresPerSocket: 8, SMTControl: "notsupported"},
		Interleaved2S: {Sockets: 2, NUMAPerSocket: 2, CoresPerSocket: 8, ThreadsPerCore: 2,
			Numbering: InterleavedSockets, SMTControl: "on", CacheIDs: true},
		SNC2S: {Sockets: 2, NUMAPerSocket: 2, CoresPerSocket: 10, ThreadsPerCore: 2,
			Numbering: SMTSplit, SMTControl: "on", CacheIDs: true},
		MultiDie: {DiesPerSocket: 2, NUMAPerSocket: 2, LLCPerSocket: 2, CoresPerSocket: 16,
			ThreadsPerCore: 2, Numbering: SMTSplit, SMTControl: "on", CacheIDs: true},
		MemoryOnlyNodes: {Sockets: 2, CoresPerSocket: 4, ThreadsPerCore: 2, Numbering: SMTSplit,
			MemoryOnlyNodes: 2, SMTControl: "on"},
		NoL3NoNUMA:      {CoresPerSocket: 8, NoL3: true, NoNUMA: true, NoDieID: true},
		TwoCPUsOneCore:  {CoresPerSocket: 1, ThreadsPerCore: 2, SMTControl: "on"},
		TwoCPUsTwoCores: {CoresPerSocket: 2, SMTControl: "notsupported"},
	}
}
