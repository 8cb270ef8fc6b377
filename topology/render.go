package topology

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/coreguard/coreguard/cpuset"
)

// drawWidth is the longest line Draw writes: the summary line of a large
// machine fits, and long core rows and scattered CPU lists wrap.
const drawWidth = 120

// DrawOptions adds a caller's annotations to the drawing.
type DrawOptions struct {
	// CoreTag returns a short tag printed right after a core, e.g. an
	// allocation number, "R" (reserved) or "W" (withheld); "" for none.
	CoreTag func(c Core) string
	// Legend lines are printed at the end, after Draw's own legend.
	Legend []string
}

// Draw writes the machine for a person to read: a summary line, then
// sockets → dies (when a socket has several) → NUMA nodes → L3 groups →
// cores, each core as its threads ("[0 40]"), isolated CPUs marked "i".
// Groups that do not nest (an L3 group over two NUMA nodes under SNC, a
// node over two dies) are shown under each parent, with a note.
func Draw(w io.Writer, t *Topology, opts DrawOptions) error {
	d := &drawing{t: t, opts: opts}
	d.header()
	for _, s := range t.Sockets {
		d.socket(s)
	}
	if !t.Offline.IsEmpty() {
		d.wrap("offline CPUs (no topology): ", "  ", strings.Split(t.Offline.String(), ","), ",")
	}
	if !t.Isolated.IsEmpty() {
		d.line(0, "legend: Ni = CPU N is isolated (isolcpus)")
	}
	for _, l := range opts.Legend {
		d.line(0, l)
	}
	_, err := io.WriteString(w, d.out.String())
	return err
}

type drawing struct {
	t    *Topology
	opts DrawOptions
	out  strings.Builder
}

func (d *drawing) line(indent int, s string) {
	d.out.WriteString(strings.Repeat("  ", indent))
	d.out.WriteString(s)
	d.out.WriteByte('\n')
}

// wrap writes words joined by sep, starting with first and going on to
// new lines that start with cont, keeping lines within drawWidth.
func (d *drawing) wrap(first, cont string, words []string, sep string) {
	cur := first
	fresh := true // nothing after the prefix yet
	for i, word := range words {
		piece := word
		if i < len(words)-1 {
			piece += sep
		}
		if !fresh && len(cur)+len(strings.TrimRight(piece, " ")) > drawWidth {
			d.out.WriteString(strings.TrimRight(cur, " ") + "\n")
			cur, fresh = cont, true
		}
		cur += piece
		fresh = false
	}
	d.out.WriteString(strings.TrimRight(cur, " ") + "\n")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func listOrDash(s cpuset.CPUSet) string {
	if s.IsEmpty() {
		return "-"
	}
	return s.String()
}

func (d *drawing) header() {
	t := d.t
	sockets := plural(len(t.Sockets), "socket")
	if len(t.Dies) > len(t.Sockets) {
		sockets += " (" + plural(len(t.Dies), "die") + ")"
	}
	llcs := plural(len(t.LLCs), "L3 group")
	if len(t.LLCs) > 0 && t.LLCs[0].Implicit {
		llcs += " (no L3 info: one per socket)"
	}
	counts := fmt.Sprintf("%s, %s, %s, %s, %s (%s)", sockets, plural(len(t.NUMANodes), "NUMA node"), llcs,
		plural(len(t.Cores), "core"), plural(t.Online.Size(), "thread"), smtText(t))
	lists := []string{"online " + listOrDash(t.Online), "isolated " + listOrDash(t.Isolated),
		"offline " + listOrDash(t.Offline)}
	if all := counts + ", " + strings.Join(lists, ", "); len(all) <= drawWidth {
		d.line(0, all)
		return
	}
	d.line(0, counts)
	for _, l := range lists {
		name, list, _ := strings.Cut(l, " ")
		d.wrap("  "+name+" ", "    ", strings.Split(list, ","), ",")
	}
}

// smtText says how many threads the cores have: "SMT2", "no SMT", or for
// hybrid CPUs "8x2 + 8x1 threads" (8 cores of 2 threads, 8 of 1); plus smt/control when known.
func smtText(t *Topology) string {
	count := map[int]int{}
	for _, c := range t.Cores {
		count[c.CPUs.Size()]++
	}
	sizes := slices.Sorted(maps.Keys(count))
	slices.Reverse(sizes)
	var s string
	switch {
	case len(sizes) > 1:
		parts := make([]string, len(sizes))
		for i, n := range sizes {
			parts[i] = fmt.Sprintf("%dx%d", count[n], n)
		}
		s = strings.Join(parts, " + ") + " threads" // hybrid, or offline siblings
	case len(sizes) == 1 && sizes[0] > 1:
		s = "SMT" + strconv.Itoa(sizes[0])
	default:
		s = "no SMT"
	}
	if t.SMTControl != "" {
		s += ", smt " + t.SMTControl
	}
	return s
}

func (d *drawing) socket(s Socket) {
	cores := d.coresWhere(func(c Core) bool { return c.Socket == s.ID })
	d.line(0, fmt.Sprintf("socket %d: %s, %s", s.ID, plural(len(cores), "core"), plural(s.CPUs.Size(), "thread")))
	var dies []Die
	for _, die := range d.t.Dies {
		if die.Socket == s.ID {
			dies = append(dies, die)
		}
	}
	if len(dies) <= 1 {
		d.nodes(1, cores, s.CPUs, "socket "+strconv.Itoa(s.ID))
		return
	}
	for _, die := range dies {
		dieCores := d.coresWhere(func(c Core) bool { return c.Socket == s.ID && c.Die == die.ID })
		d.line(1, fmt.Sprintf("die %d: %s", die.ID, plural(len(dieCores), "core")))
		d.nodes(2, dieCores, die.CPUs, fmt.Sprintf("die %d", die.ID))
	}
}

// nodes draws the NUMA nodes of a parent's cores; parentCPUs tells when a
// node reaches beyond the parent.
func (d *drawing) nodes(indent int, cores []Core, parentCPUs cpuset.CPUSet, parent string) {
	for _, n := range d.t.NUMANodes {
		inNode := filterCores(cores, func(c Core) bool { return c.NUMA == n.ID })
		if len(inNode) == 0 {
			continue
		}
		head := fmt.Sprintf("NUMA node %d: %s, cpus ", n.ID, plural(len(inNode), "core"))
		if !n.CPUs.IsSubsetOf(parentCPUs) {
			head = fmt.Sprintf("NUMA node %d (part in %s): %s, cpus ", n.ID, parent, plural(len(inNode), "core"))
		}
		d.wrap(strings.Repeat("  ", indent)+head, strings.Repeat("  ", indent+2), strings.Split(n.CPUs.String(), ","), ",")
		d.llcs(indent+1, inNode, n)
	}
}

func (d *drawing) llcs(indent int, cores []Core, node NUMANode) {
	for _, g := range d.t.LLCs {
		inGroup := filterCores(cores, func(c Core) bool { return c.LLC == g.Index })
		if len(inGroup) == 0 {
			continue
		}
		name := fmt.Sprintf("L3 #%d", g.Index)
		switch {
		case g.Implicit:
			name = "L3 (no cache info)"
		case g.ID >= 0:
			name += fmt.Sprintf(" id %d", g.ID)
		}
		head := fmt.Sprintf("%s: %s, cpus %s", name, plural(len(inGroup), "core"), g.CPUs)
		if !g.CPUs.IsSubsetOf(node.CPUs) {
			head = fmt.Sprintf("%s: %d of its %d cores here, shared with NUMA nodes %s",
				name, len(inGroup), len(d.coresWhere(func(c Core) bool { return c.LLC == g.Index })), d.nodesOf(g.CPUs))
		}
		if len(head)+2*indent > drawWidth {
			head = fmt.Sprintf("%s: %s", name, plural(len(inGroup), "core"))
		}
		d.line(indent, head)
		words := make([]string, len(inGroup))
		for i, c := range inGroup {
			words[i] = d.core(c)
		}
		pad := strings.Repeat("  ", indent+1)
		d.wrap(pad, pad, words, " ")
	}
}

// core draws one core: "[0 40]", isolated threads marked "5i", then its tag.
func (d *drawing) core(c Core) string {
	threads := make([]string, 0, c.CPUs.Size())
	for cpu := range c.CPUs.All() {
		s := strconv.Itoa(cpu)
		if d.t.Isolated.Contains(cpu) {
			s += "i"
		}
		threads = append(threads, s)
	}
	s := "[" + strings.Join(threads, " ") + "]"
	if d.opts.CoreTag != nil {
		s += d.opts.CoreTag(c)
	}
	return s
}

func (d *drawing) nodesOf(cpus cpuset.CPUSet) string {
	var ids []string
	for _, n := range d.t.NUMANodes {
		if n.CPUs.Intersects(cpus) {
			ids = append(ids, strconv.Itoa(n.ID))
		}
	}
	return strings.Join(ids, ",")
}

func (d *drawing) coresWhere(keep func(Core) bool) []Core {
	return filterCores(d.t.Cores, keep)
}

func filterCores(cores []Core, keep func(Core) bool) []Core {
	var out []Core
	for _, c := range cores {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}
