package cpuset

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		fmt  string
	}{
		{"", nil, ""},
		{"\n", nil, ""},
		{"0", []int{0}, "0"},
		{"0-3", []int{0, 1, 2, 3}, "0-3"},
		{"0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
		{"  5,1,3 ", []int{1, 3, 5}, "1,3,5"},
		{"1,2", []int{1, 2}, "1-2"},
		{"4-4", []int{4}, "4"},
		{"0-2,1-5", []int{0, 1, 2, 3, 4, 5}, "0-5"},
		{"63,64", []int{63, 64}, "63-64"},
		{"8191", []int{8191}, "8191"},
		{"007", []int{7}, "7"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := s.List(); !slices.Equal(got, append([]int{}, tt.want...)) {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if got := s.String(); got != tt.fmt {
				t.Errorf("String() = %q, want %q", got, tt.fmt)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"3-1", "range end 1 is below its start 3"},
		{"a", `"a" is not a CPU number`},
		{"1,,2", "empty element"},
		{"1,", "empty element"},
		{",1", "empty element"},
		{"-1", "missing CPU number"},
		{"1-", "missing CPU number"},
		{"1-2-3", `"2-3" is not a CPU number`},
		{"8192", "CPU 8192 is out of range (0-8191)"},
		{"0-99999999999999999999", "out of range"},
		{"+1", `"+1" is not a CPU number`},
		{"1 ,2", `"1 " is not a CPU number`},
		{"0-7:2/4", `is not a CPU number`},
		{"0x3", `is not a CPU number`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error", tt.in)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("Parse(%q) error %q: want it to quote the input and contain %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestAlgebra(t *testing.T) {
	a := MustParse("0-5,64-66")
	b := MustParse("4-9,65")
	tests := []struct {
		name string
		got  CPUSet
		want string
	}{
		{"union", a.Union(b), "0-9,64-66"},
		{"union none", a.Union(), "0-5,64-66"},
		{"union many", New(1).Union(New(3), New(200)), "1,3,200"},
		{"intersection", a.Intersection(b), "4-5,65"},
		{"difference", a.Difference(b), "0-3,64,66"},
		{"difference trims", New(100).Difference(New(100, 1)), ""},
		{"empty diff", CPUSet{}.Difference(a), ""},
		{"range", Range(3, 6), "3-6"},
		{"empty range", Range(6, 3), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.String() != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
			if !tt.got.Equals(MustParse(tt.want)) {
				t.Errorf("%q does not Equal its own parse: trailing zero words?", tt.got)
			}
		})
	}
	if a.String() != "0-5,64-66" || b.String() != "4-9,65" {
		t.Errorf("operands changed: a=%s b=%s", a, b)
	}
}

func TestPredicates(t *testing.T) {
	a := MustParse("1-3")
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"subset", New(1, 3).IsSubsetOf(a), true},
		{"not subset", New(1, 4).IsSubsetOf(a), false},
		{"long not subset", New(1, 300).IsSubsetOf(a), false},
		{"empty subset", CPUSet{}.IsSubsetOf(a), true},
		{"intersects", a.Intersects(New(3, 9)), true},
		{"disjoint", a.Intersects(New(0, 4)), false},
		{"contains", a.Contains(2), true},
		{"not contains", a.Contains(4), false},
		{"negative", a.Contains(-1), false},
		{"far", a.Contains(5000), false},
		{"empty", CPUSet{}.IsEmpty(), true},
		{"equals", a.Equals(Range(1, 3)), true},
		{"not equals", a.Equals(New(1, 2)), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if a.Size() != 3 || a.Min() != 1 || a.Max() != 3 {
		t.Errorf("Size/Min/Max of %s = %d/%d/%d", a, a.Size(), a.Min(), a.Max())
	}
	if e := (CPUSet{}); e.Min() != -1 || e.Max() != -1 || e.Size() != 0 {
		t.Errorf("empty Min/Max/Size = %d/%d/%d", e.Min(), e.Max(), e.Size())
	}
}

func TestBuilderAndIteration(t *testing.T) {
	var b Builder
	b.Add(70, 2)
	first := b.Set()
	b.AddSet(New(5))
	if first.String() != "2,70" {
		t.Errorf("Set() result changed by later Add: %s", first)
	}
	if got := b.Set().String(); got != "2,5,70" {
		t.Errorf("builder = %s", got)
	}
	var seen []int
	for c := range b.Set().All() {
		seen = append(seen, c)
		if len(seen) == 2 {
			break
		}
	}
	if !slices.Equal(seen, []int{2, 5}) {
		t.Errorf("early-stopped iteration = %v", seen)
	}
	for _, bad := range []int{-1, MaxCPUs} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%d) did not panic", bad)
				}
			}()
			New(bad)
		}()
	}
}

func TestJSON(t *testing.T) {
	type doc struct {
		CPUs CPUSet `json:"cpus"`
	}
	out, err := json.Marshal(doc{MustParse("0-3,7")})
	if err != nil || string(out) != `{"cpus":"0-3,7"}` {
		t.Fatalf("Marshal = %s, %v", out, err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"cpus":"1,2,9"}`), &d); err != nil || d.CPUs.String() != "1-2,9" {
		t.Fatalf("Unmarshal = %s, %v", d.CPUs, err)
	}
	if err := json.Unmarshal([]byte(`{"cpus":"2-1"}`), &d); err == nil {
		t.Fatal("Unmarshal of a bad list succeeded")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0", "0-3,8,10-11", "1,,2", "3-1", "a", "8191", "0-8191", "5,1-2\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		canon := s.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) ok but its format %q does not parse: %v", in, canon, err)
		}
		if !again.Equals(s) || again.String() != canon {
			t.Fatalf("round trip of %q: %q then %q", in, canon, again)
		}
		if s.Size() != len(s.List()) {
			t.Fatalf("Size %d != len(List) %d", s.Size(), len(s.List()))
		}
	})
}

func BenchmarkUnion(b *testing.B) {
	x, y := MustParse("0-191"), MustParse("192-383")
	b.ReportAllocs()
	for b.Loop() {
		_ = x.Union(y)
	}
}
