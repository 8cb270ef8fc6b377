package alloc

import "slices"

// The packing policy, as a recipe of named steps (compare kubelet's
// cpu_assignment.go, whose full-pcpus-only mode refuses what pickCores here
// rounds up). The tree it walks is machine → socket → die → NUMA node → L3
// group (domains.go; the order follows the machine where NUMA nodes span
// sockets).
//
//  1. countFree: free threads of every domain, counting only cores that are
//     wholly free.
//  2. smallestFit: climb the tree from L3 groups up and stop at the first
//     level where one domain holds the whole request.
//  3. choose: among the domains that hold it, take the one where the
//     request spans the fewest domains at each level below (NUMA nodes,
//     then L3 groups...); then the best fit — the fullest domain that still
//     fits — so big holes stay for big requests; then the fuller parent,
//     then the lowest CPU, so the result is deterministic.
//  4. cover: inside the chosen domain, descend; where no single child holds
//     the request, take the fewest children that do (among the sets of that
//     size, the one whose own children it spans least, then the best fit)
//     and go on below them together, so every level is spanned as little
//     as the levels above allow.
//  5. pickCores: inside an L3 group every free core is alike to the
//     container; take cores with the most threads first while they fit, then
//     the smallest core that covers what is left (lowest CPU on ties). Only
//     that last core can hold threads beyond the request.

// pack returns the cores for a request of n threads, or an ExhaustedError.
func (a *Allocator) pack(n int) ([]int, error) {
	free := a.countFree()
	for l := 0; l < numLevels; l++ {
		if d, ok := a.choose(a.byLevel[l], n, free); ok {
			return a.cover([]int{d}, n, free, nil), nil
		}
	}
	return nil, &ExhaustedError{Request: n, Free: a.freeSummary()}
}

// countFree returns the free threads of every domain (kept by setUse).
func (a *Allocator) countFree() []int { return a.freeThreads }

// spans counts, per level, the domains a choice touches below its level.
type spans [numLevels]int

func (s spans) less(o spans) int {
	for l := numLevels - 1; l >= 0; l-- {
		if s[l] != o[l] {
			return s[l] - o[l]
		}
	}
	return 0
}

// choose returns the candidate that holds n threads best (step 3).
func (a *Allocator) choose(candidates []int, n int, free []int) (int, bool) {
	best := -1
	var bestSpans spans
	for _, d := range candidates {
		if free[d] < n {
			continue
		}
		var sp spans
		if lvl := a.domains[d].level; lvl > 0 {
			cores := a.cover(a.domains[d].children, n, free, a.scratch[lvl][:0])
			a.scratch[lvl] = cores[:0]
			sp = a.spansOf(cores, lvl)
		}
		if best < 0 || a.better(d, sp, best, bestSpans, free) {
			best, bestSpans = d, sp
		}
	}
	return best, best >= 0
}

func (a *Allocator) better(d int, sp spans, than int, thanSpans spans, free []int) bool {
	if c := sp.less(thanSpans); c != 0 {
		return c < 0
	}
	if free[d] != free[than] {
		return free[d] < free[than]
	}
	if p, q := a.domains[d].parent, a.domains[than].parent; p >= 0 && q >= 0 && free[p] != free[q] {
		return free[p] < free[q]
	}
	return a.domains[d].first < a.domains[than].first
}

// spansOf counts the domains below level top that cores touch.
func (a *Allocator) spansOf(cores []int, top int) spans {
	var sp spans
	a.stamp++
	for _, ci := range cores {
		for x := a.coreCell[ci]; x >= 0 && a.domains[x].level < top; x = a.domains[x].parent {
			if a.marks[x] != a.stamp {
				a.marks[x] = a.stamp
				sp[a.domains[x].level]++
			}
		}
	}
	return sp
}

// cover appends to out the cores for n threads from the domains of set,
// which are all of one level (step 4).
func (a *Allocator) cover(set []int, n int, free []int, out []int) []int {
	if d, ok := a.choose(set, n, free); ok {
		if a.domains[d].level == 0 {
			return a.pickCores(&a.domains[d], n, out)
		}
		return a.cover(a.domains[d].children, n, free, out)
	}
	if a.domains[set[0]].level > 0 {
		var below []int
		for _, d := range a.fewest(set, n, free) {
			below = append(below, a.domains[d].children...)
		}
		return a.cover(below, n, free, out)
	}
	// Cells: whole ones, most free first, until the rest fits one.
	cells := a.largestFirst(set, free)
	rest := n
	for i, c := range cells {
		if d, ok := a.choose(cells[i:], rest, free); ok {
			return a.pickCores(&a.domains[d], rest, out)
		}
		out = a.pickCores(&a.domains[c], free[c], out)
		rest -= free[c]
	}
	return out
}

// maxSubsets bounds how many sets of domains fewest compares; beyond it,
// the largest domains are taken.
const maxSubsets = 64

// fewest returns the fewest domains of set that together hold n threads:
// among the sets of that size, the one whose cover spans the fewest
// domains below, then the one with the fewest free threads (best fit),
// then the one with the lowest CPU.
func (a *Allocator) fewest(set []int, n int, free []int) []int {
	sorted := a.largestFirst(set, free)
	k, sum := 0, 0
	for sum < n {
		sum += free[sorted[k]]
		k++
	}
	best := sorted[:k]
	if binomial(len(sorted), k) > maxSubsets {
		return best
	}
	bestSpans := a.spansOf(a.cover(childrenOf(a, best), n, free, nil), a.domains[best[0]].level+1)
	bestFree := sumFree(best, free)
	subsets(sorted, k, func(s []int) {
		total := sumFree(s, free)
		if total < n {
			return
		}
		sp := a.spansOf(a.cover(childrenOf(a, s), n, free, nil), a.domains[s[0]].level+1)
		c := sp.less(bestSpans)
		if c < 0 || c == 0 && total < bestFree {
			best, bestSpans, bestFree = slices.Clone(s), sp, total
		}
	})
	return best
}

func (a *Allocator) largestFirst(set []int, free []int) []int {
	out := slices.Clone(set)
	slices.SortStableFunc(out, func(x, y int) int { return free[y] - free[x] })
	return out
}

func childrenOf(a *Allocator, set []int) []int {
	var out []int
	for _, d := range set {
		out = append(out, a.domains[d].children...)
	}
	return out
}

func sumFree(set []int, free []int) int {
	s := 0
	for _, d := range set {
		s += free[d]
	}
	return s
}

// subsets calls f with every k-element subset of xs, in order.
func subsets(xs []int, k int, f func([]int)) {
	pick := make([]int, 0, k)
	var rec func(start int)
	rec = func(start int) {
		if len(pick) == k {
			f(pick)
			return
		}
		for i := start; i <= len(xs)-(k-len(pick)); i++ {
			pick = append(pick, xs[i])
			rec(i + 1)
			pick = pick[:len(pick)-1]
		}
	}
	rec(0)
}

func binomial(n, k int) int {
	r := 1
	for i := 1; i <= k; i++ {
		r = r * (n - k + i) / i
		if r > 1<<20 {
			return r
		}
	}
	return r
}

// pickCores appends to out the free cores of one cell for n threads (step 5).
// The cell's cores are ordered most threads first, then lowest CPU.
func (a *Allocator) pickCores(cell *domain, n int, out []int) []int {
	rest := n
	for _, ci := range cell.cores {
		if rest == 0 {
			return out
		}
		if a.use[ci] == nil && a.threads(ci) <= rest && !containsCore(out, ci) {
			out = append(out, ci)
			rest -= a.threads(ci)
		}
	}
	if rest == 0 {
		return out
	}
	// Every free core left is bigger than the rest: the smallest covers it.
	cover := -1
	for _, ci := range cell.cores {
		if a.use[ci] == nil && !containsCore(out, ci) && (cover < 0 || a.threads(ci) < a.threads(cover)) {
			cover = ci
		}
	}
	return append(out, cover)
}

func (a *Allocator) threads(core int) int { return a.coreThreads[core] }

func containsCore(cores []int, c int) bool {
	for _, x := range cores {
		if x == c {
			return true
		}
	}
	return false
}
