// Package cpuset is coreguard's set of logical CPU numbers: an immutable bitset
// with the Linux list format ("0-3,8,10-11") used by sysfs, cgroups and the OCI
// runtime spec.
//
// A CPUSet is a value: every operation returns a new set and never changes its
// operands, so sets can be shared freely between the topology model, the
// allocator and the plugin. Use a Builder to make a set one CPU at a time.
package cpuset

import (
	"fmt"
	"iter"
	"math/bits"
	"strconv"
	"strings"
)

// MaxCPUs bounds CPU numbers: valid CPUs are 0..MaxCPUs-1. It matches the
// largest NR_CPUS the Linux kernel can be built with on x86 (CONFIG_NR_CPUS
// caps at 8192), so every CPU number a real kernel shows fits.
const MaxCPUs = 8192

const wordBits = 64

// CPUSet is an immutable set of CPU numbers. The zero value is the empty set.
type CPUSet struct {
	// words holds bit i%64 of words[i/64] for CPU i. It never ends with a zero
	// word, so two equal sets have equal words.
	words []uint64
}

// New returns the set of the given CPUs. It panics on a CPU outside
// 0..MaxCPUs-1: that is a programming error, whereas input from files or users
// goes through Parse.
func New(cpus ...int) CPUSet {
	var b Builder
	for _, c := range cpus {
		b.Add(c)
	}
	return b.Set()
}

// Range returns the set lo..hi inclusive; empty when hi < lo.
func Range(lo, hi int) CPUSet {
	var b Builder
	for c := lo; c <= hi; c++ {
		b.Add(c)
	}
	return b.Set()
}

func trim(w []uint64) []uint64 {
	n := len(w)
	for n > 0 && w[n-1] == 0 {
		n--
	}
	if n == 0 {
		return nil
	}
	return w[:n]
}

// Size is the number of CPUs in the set.
func (s CPUSet) Size() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return n
}

// IsEmpty reports whether the set has no CPUs.
func (s CPUSet) IsEmpty() bool { return len(s.words) == 0 }

// Contains reports whether cpu is in the set.
func (s CPUSet) Contains(cpu int) bool {
	if cpu < 0 {
		return false
	}
	i := cpu / wordBits
	return i < len(s.words) && s.words[i]&(1<<(uint(cpu)%wordBits)) != 0
}

// Equals reports whether both sets hold the same CPUs.
func (s CPUSet) Equals(o CPUSet) bool {
	if len(s.words) != len(o.words) {
		return false
	}
	for i := range s.words {
		if s.words[i] != o.words[i] {
			return false
		}
	}
	return true
}

// IsSubsetOf reports whether every CPU of s is in o.
func (s CPUSet) IsSubsetOf(o CPUSet) bool {
	if len(s.words) > len(o.words) {
		return false
	}
	for i, w := range s.words {
		if w&^o.words[i] != 0 {
			return false
		}
	}
	return true
}

// Intersects reports whether s and o share at least one CPU.
func (s CPUSet) Intersects(o CPUSet) bool {
	n := min(len(s.words), len(o.words))
	for i := 0; i < n; i++ {
		if s.words[i]&o.words[i] != 0 {
			return true
		}
	}
	return false
}

// Union returns the CPUs in s or in any of others.
func (s CPUSet) Union(others ...CPUSet) CPUSet {
	n := len(s.words)
	for _, o := range others {
		n = max(n, len(o.words))
	}
	if n == 0 {
		return CPUSet{}
	}
	w := make([]uint64, n)
	copy(w, s.words)
	for _, o := range others {
		for i, x := range o.words {
			w[i] |= x
		}
	}
	return CPUSet{words: w}
}

// Intersection returns the CPUs in both s and o.
func (s CPUSet) Intersection(o CPUSet) CPUSet {
	n := min(len(s.words), len(o.words))
	w := make([]uint64, n)
	for i := 0; i < n; i++ {
		w[i] = s.words[i] & o.words[i]
	}
	return CPUSet{words: trim(w)}
}

// Difference returns the CPUs in s that are not in o.
func (s CPUSet) Difference(o CPUSet) CPUSet {
	if len(s.words) == 0 {
		return CPUSet{}
	}
	w := make([]uint64, len(s.words))
	copy(w, s.words)
	for i := 0; i < len(w) && i < len(o.words); i++ {
		w[i] &^= o.words[i]
	}
	return CPUSet{words: trim(w)}
}

// All yields the CPUs in ascending order.
func (s CPUSet) All() iter.Seq[int] {
	return func(yield func(int) bool) {
		for i, w := range s.words {
			for w != 0 {
				b := bits.TrailingZeros64(w)
				if !yield(i*wordBits + b) {
					return
				}
				w &= w - 1
			}
		}
	}
}

// List returns the CPUs in ascending order.
func (s CPUSet) List() []int {
	out := make([]int, 0, s.Size())
	for c := range s.All() {
		out = append(out, c)
	}
	return out
}

// Min returns the lowest CPU, or -1 for the empty set.
func (s CPUSet) Min() int {
	for i, w := range s.words {
		if w != 0 {
			return i*wordBits + bits.TrailingZeros64(w)
		}
	}
	return -1
}

// Max returns the highest CPU, or -1 for the empty set.
func (s CPUSet) Max() int {
	if len(s.words) == 0 {
		return -1
	}
	i := len(s.words) - 1
	return i*wordBits + wordBits - 1 - bits.LeadingZeros64(s.words[i])
}

// String formats the set in the canonical Linux list format: ascending,
// runs of two or more CPUs as "lo-hi", "" for the empty set.
func (s CPUSet) String() string {
	var sb strings.Builder
	start, prev := -1, -1
	flush := func() {
		if start < 0 {
			return
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(start))
		if prev > start {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(prev))
		}
	}
	for c := range s.All() {
		if c != prev+1 || start < 0 {
			flush()
			start = c
		}
		prev = c
	}
	flush()
	return sb.String()
}

// MarshalText writes the Linux list format, so sets read naturally in JSON and YAML.
func (s CPUSet) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses the Linux list format.
func (s *CPUSet) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Parse reads a Linux CPU list such as "0-3,8,10-11". Surrounding white space
// (sysfs files end in a newline) is ignored and an empty list is the empty
// set. Anything else that is not a strictly formed list of in-range CPUs and
// ascending ranges is an error that quotes the input and says what is wrong.
func Parse(s string) (CPUSet, error) {
	list := strings.TrimSpace(s)
	if list == "" {
		return CPUSet{}, nil
	}
	var b Builder
	for i, elem := range strings.Split(list, ",") {
		lo, hi, err := parseElem(elem)
		if err != nil {
			return CPUSet{}, fmt.Errorf("cpuset: invalid CPU list %q: element %d %q: %w", s, i+1, elem, err)
		}
		b.addRange(lo, hi)
	}
	return b.Set(), nil
}

// MustParse is Parse for constants in code and tests; it panics on error.
func MustParse(s string) CPUSet {
	c, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return c
}

func parseElem(elem string) (lo, hi int, err error) {
	if elem == "" {
		return 0, 0, fmt.Errorf("empty element")
	}
	first, last, isRange := strings.Cut(elem, "-")
	if lo, err = parseCPU(first); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parseCPU(last); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range end %d is below its start %d", hi, lo)
	}
	return lo, hi, nil
}

func parseCPU(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("missing CPU number")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a CPU number", s)
		}
	}
	// Reject huge numbers by length before converting, so nothing overflows.
	if len(s) > 6 {
		return 0, fmt.Errorf("CPU %s is out of range (0-%d)", s, MaxCPUs-1)
	}
	n, _ := strconv.Atoi(s)
	if n >= MaxCPUs {
		return 0, fmt.Errorf("CPU %d is out of range (0-%d)", n, MaxCPUs-1)
	}
	return n, nil
}

// Builder collects CPUs into a set. The zero value is ready to use.
type Builder struct {
	words []uint64
}

// Add puts cpus into the set being built. It panics on a CPU outside
// 0..MaxCPUs-1 (see New).
func (b *Builder) Add(cpus ...int) {
	for _, c := range cpus {
		if c < 0 || c >= MaxCPUs {
			panic(fmt.Sprintf("cpuset: CPU %d out of range 0-%d", c, MaxCPUs-1))
		}
		b.addRange(c, c)
	}
}

// AddSet puts every CPU of s into the set being built.
func (b *Builder) AddSet(s CPUSet) {
	b.grow(len(s.words))
	for i, w := range s.words {
		b.words[i] |= w
	}
}

func (b *Builder) grow(n int) {
	if n > len(b.words) {
		b.words = append(b.words, make([]uint64, n-len(b.words))...)
	}
}

func (b *Builder) addRange(lo, hi int) {
	b.grow(hi/wordBits + 1)
	for c := lo; c <= hi; c++ {
		b.words[c/wordBits] |= 1 << (uint(c) % wordBits)
	}
}

// Set returns the set built so far. The Builder may go on being used; the
// returned set is not affected.
func (b *Builder) Set() CPUSet {
	w := trim(b.words)
	if w == nil {
		return CPUSet{}
	}
	return CPUSet{words: append([]uint64(nil), w...)}
}
