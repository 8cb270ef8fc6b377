package topology

// JSONSummary is what `coreguard topology --json` prints. The first eight
// fields are read by other tools: keep their names and meaning.
type JSONSummary struct {
	Sockets   int      `json:"sockets"`
	NUMANodes int      `json:"numaNodes"` // nodes with online CPUs
	LLCGroups int      `json:"llcGroups"`
	Cores     int      `json:"cores"`    // online cores
	Threads   int      `json:"threads"`  // online CPUs
	Online    string   `json:"online"`   // Linux list
	CoreList  []string `json:"coreList"` // each core's online threads, ordered by first CPU
	Isolated  string   `json:"isolated"` // Linux list, "" when none

	Offline        string `json:"offline"`
	Dies           int    `json:"dies"`
	ThreadsPerCore int    `json:"threadsPerCore"` // most threads of any core
	SMTControl     string `json:"smtControl"`     // cpu/smt/control, "" when absent

	CoresDetail     []CoreSummary `json:"coresDetail"`
	NUMANodesDetail []NodeSummary `json:"numaNodesDetail"`
	LLCGroupsDetail []LLCSummary  `json:"llcGroupsDetail"`
}

// CoreSummary places one core; indexes match coreList.
type CoreSummary struct {
	CPUs   string `json:"cpus"`
	CoreID int    `json:"coreId"` // sysfs core_id, -1 when absent; not unique
	Socket int    `json:"socket"`
	Die    int    `json:"die"`
	NUMA   int    `json:"numa"`
	LLC    int    `json:"llc"` // index into llcGroupsDetail
}

// NodeSummary is one NUMA node with CPUs.
type NodeSummary struct {
	ID   int    `json:"id"`
	CPUs string `json:"cpus"`
}

// LLCSummary is one L3 group.
type LLCSummary struct {
	Index    int    `json:"index"`
	ID       int    `json:"id"` // cache id, -1 when sysfs has none
	CPUs     string `json:"cpus"`
	Implicit bool   `json:"implicit,omitempty"`
}

// Summary condenses t for JSON output. Slices are never nil, so they print
// as [] rather than null.
func Summary(t *Topology) JSONSummary {
	s := JSONSummary{
		Sockets: len(t.Sockets), NUMANodes: len(t.NUMANodes), LLCGroups: len(t.LLCs),
		Cores: len(t.Cores), Threads: t.Online.Size(), Online: t.Online.String(),
		CoreList: make([]string, 0, len(t.Cores)), Isolated: t.Isolated.String(),
		Offline: t.Offline.String(), Dies: len(t.Dies), ThreadsPerCore: t.ThreadsPerCore(),
		SMTControl:      t.SMTControl,
		CoresDetail:     make([]CoreSummary, 0, len(t.Cores)),
		NUMANodesDetail: make([]NodeSummary, 0, len(t.NUMANodes)),
		LLCGroupsDetail: make([]LLCSummary, 0, len(t.LLCs)),
	}
	for _, c := range t.Cores {
		s.CoreList = append(s.CoreList, c.CPUs.String())
		s.CoresDetail = append(s.CoresDetail, CoreSummary{CPUs: c.CPUs.String(), CoreID: c.CoreID,
			Socket: c.Socket, Die: c.Die, NUMA: c.NUMA, LLC: c.LLC})
	}
	for _, n := range t.NUMANodes {
		s.NUMANodesDetail = append(s.NUMANodesDetail, NodeSummary{ID: n.ID, CPUs: n.CPUs.String()})
	}
	for _, g := range t.LLCs {
		s.LLCGroupsDetail = append(s.LLCGroupsDetail, LLCSummary{Index: g.Index, ID: g.ID,
			CPUs: g.CPUs.String(), Implicit: g.Implicit})
	}
	return s
}
