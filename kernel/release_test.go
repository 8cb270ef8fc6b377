package kernel

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Release
	}{
		{"5.4.0-1045-aws", Release{Major: 5, Minor: 4, Local: "-1045-aws", Distro: "ubuntu", Build: []int{1045}, Flavour: "aws"}},
		{"4.14.154-128.181.amzn2.x86_64", Release{Major: 4, Minor: 14, Patch: 154, Local: "-128.181.amzn2.x86_64", Distro: "amzn2", Build: []int{128, 181}, Dist: "amzn2", Arch: "x86_64"}},
		{"3.10.0-1062.8.1.el7.x86_64", Release{Major: 3, Minor: 10, Local: "-1062.8.1.el7.x86_64", Distro: "el7", Build: []int{1062, 8, 1}, Dist: "el7", Arch: "x86_64"}},
		{"4.15.0-67-generic", Release{Major: 4, Minor: 15, Local: "-67-generic", Distro: "ubuntu", Build: []int{67}, Flavour: "generic"}},
		{"6.8.0-rc3", Release{Major: 6, Minor: 8, RC: 3, Local: ""}},
		{"6.8.0-rc3+", Release{Major: 6, Minor: 8, RC: 3, Local: "+"}},
		{"6.8.0-rc3-00001-gabcdef12", Release{Major: 6, Minor: 8, RC: 3, Local: "-00001-gabcdef12"}},
		{"6.8.0-rc3-00001-gabcdef12-dirty", Release{Major: 6, Minor: 8, RC: 3, Local: "-00001-gabcdef12-dirty"}},
		{"5.4", Release{Major: 5, Minor: 4}},
		{"5.4-rc1", Release{Major: 5, Minor: 4, RC: 1}},
		{"4.19.84", Release{Major: 4, Minor: 19, Patch: 84}},
		{"4.19.84+", Release{Major: 4, Minor: 19, Patch: 84, Local: "+"}},
		{"5.10.0-custom", Release{Major: 5, Minor: 10, Local: "-custom"}},
		{"  4.19.84\n", Release{Major: 4, Minor: 19, Patch: 84}},
		{"2.6.32.27", Release{Major: 2, Minor: 6, Patch: 32, Local: ".27"}},
		{"4.19.0-6-amd64", Release{Major: 4, Minor: 19, Local: "-6-amd64", Distro: "debian", Build: []int{6}, Flavour: "amd64"}},
		{"5.10.0-28-cloud-amd64", Release{Major: 5, Minor: 10, Local: "-28-cloud-amd64", Distro: "debian", Build: []int{28}, Flavour: "cloud-amd64"}},
		{"6.1.0-18-rt-arm64", Release{Major: 6, Minor: 1, Local: "-18-rt-arm64", Distro: "debian", Build: []int{18}, Flavour: "rt-arm64"}},
		{"4.9.0-11-686-pae", Release{Major: 4, Minor: 9, Local: "-11-686-pae", Distro: "debian", Build: []int{11}, Flavour: "686-pae"}},
		{"5.3.0-24-generic", Release{Major: 5, Minor: 3, Local: "-24-generic", Distro: "ubuntu", Build: []int{24}, Flavour: "generic"}},
		{"4.15.0-1050-gcp", Release{Major: 4, Minor: 15, Local: "-1050-gcp", Distro: "ubuntu", Build: []int{1050}, Flavour: "gcp"}},
		{"5.15.0-91-lowlatency-64k", Release{Major: 5, Minor: 15, Local: "-91-lowlatency-64k", Distro: "ubuntu", Build: []int{91}, Flavour: "lowlatency-64k"}},
		{"5.4.0-050400-generic", Release{Major: 5, Minor: 4, Local: "-050400-generic", Flavour: "generic"}},
		{"4.18.0-147.el8.x86_64", Release{Major: 4, Minor: 18, Local: "-147.el8.x86_64", Distro: "el8", Build: []int{147}, Dist: "el8", Arch: "x86_64"}},
		{"4.18.0-348.7.1.el8_5.x86_64", Release{Major: 4, Minor: 18, Local: "-348.7.1.el8_5.x86_64", Distro: "el8", Build: []int{348, 7, 1}, Dist: "el8_5", Arch: "x86_64"}},
		{"4.18.0-80.el8.x86_64+debug", Release{Major: 4, Minor: 18, Local: "-80.el8.x86_64+debug", Distro: "el8", Build: []int{80}, Dist: "el8", Arch: "x86_64"}},
		{"3.10.0-1160.el7.x86_64", Release{Major: 3, Minor: 10, Local: "-1160.el7.x86_64", Distro: "el7", Build: []int{1160}, Dist: "el7", Arch: "x86_64"}},
		{"4.14.35-1902.10.2.el7uek.x86_64", Release{Major: 4, Minor: 14, Patch: 35, Local: "-1902.10.2.el7uek.x86_64", Distro: "el7uek", Build: []int{1902, 10, 2}, Dist: "el7uek", Arch: "x86_64"}},
		{"6.1.55-75.123.amzn2023.x86_64", Release{Major: 6, Minor: 1, Patch: 55, Local: "-75.123.amzn2023.x86_64", Distro: "amzn2023", Build: []int{75, 123}, Dist: "amzn2023", Arch: "x86_64"}},
		{"6.5.6-300.fc39.aarch64", Release{Major: 6, Minor: 5, Patch: 6, Local: "-300.fc39.aarch64", Distro: "fc39", Build: []int{300}, Dist: "fc39", Arch: "aarch64"}},
		{"4.19.81-coreos", Release{Major: 4, Minor: 19, Patch: 81, Local: "-coreos", Distro: "coreos"}},
		{"4.14.96-coreos-r1", Release{Major: 4, Minor: 14, Patch: 96, Local: "-coreos-r1", Distro: "coreos"}},
		{"5.15.142-flatcar", Release{Major: 5, Minor: 15, Patch: 142, Local: "-flatcar", Distro: "flatcar"}},
		{"4.12.14-122.37-default", Release{Major: 4, Minor: 12, Patch: 14, Local: "-122.37-default", Distro: "other", Build: []int{122, 37}, Flavour: "default"}},
		{"4.19.84-1", Release{Major: 4, Minor: 19, Patch: 84, Local: "-1", Distro: "other", Build: []int{1}}},
		{"4.19.84-1-custom", Release{Major: 4, Minor: 19, Patch: 84, Local: "-1-custom", Distro: "other", Build: []int{1}, Flavour: "custom"}},
		{"5.10.162+", Release{Major: 5, Minor: 10, Patch: 162, Local: "+"}},
		{"05.04.00", Release{Major: 5, Minor: 4}},
		{"4.19.84_custom", Release{Major: 4, Minor: 19, Patch: 84, Local: "_custom"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.in, plain(got), plain(tt.want))
			}
			again, err := Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("Parse(%q.String() = %q) = %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

// plain prints a Release field by field (Release has a String method).
type plain Release

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"garbage", `kernel release "garbage": does not start with a version number`},
		{"v5.4.0", "does not start with a version number"},
		{"5", "needs at least MAJOR.MINOR"},
		{"5.", "needs at least MAJOR.MINOR"},
		{"5.x", "needs at least MAJOR.MINOR"},
		{"5.4.0-rc", "-rc without a number"},
		{"5.4.0-rc0", "-rc0"},
		{"5.4.0 generic", `character ' ' at byte 5`},
		{"5.4.0-é", "is not allowed"},
		{"5.4.0/x", `character '/'`},
		{"5.4a", `unexpected "a" after the version 5.4`},
		{"99999999999.4", "is too large"},
		{"5.4.0-99999999999-generic", "is too large"},
		{strings.Repeat("5", 300), "longer than any kernel release"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) error %v, want one containing %q", tt.in, err, tt.want)
			}
			if tt.in != "" && !strings.Contains(err.Error(), "kernel release ") {
				t.Errorf("error %q does not name the input", err)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	// Each is below the next.
	order := []string{
		"3.10.0-1062.el7", "3.10.0-1062.4.1.el7", "3.10.0-1062.8.1.el7", "3.10.0-1127.el7",
		"4.9.9", "4.9.10", "4.14.153", "4.14.154", "4.14.154-127.181.amzn2", "4.14.154-128.181.amzn2",
		"4.15.0-66-generic", "4.15.0-67-generic", "4.15.0-1000",
		"4.18-rc1", "4.18.0-rc7", "4.18", "4.19.83", "5.4.0-rc1", "5.4.0-rc8", "5.4.0", "5.4.1", "5.10.0", "6.8.0-rc3", "10.0",
	}
	for i := range order {
		for j := range order {
			a, b := MustParse(order[i]), MustParse(order[j])
			want := cmpInt(i, j)
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	if c := Compare(MustParse("5.4"), MustParse("5.4.0")); c != 0 {
		t.Errorf("5.4 vs 5.4.0: %d", c)
	}
}

func TestReleaseHelpers(t *testing.T) {
	r := MustParse("4.15.0-67-generic")
	if r.Mainline() != "4.15.0" || r.Branch() != "4.15" || r.Upstream() {
		t.Errorf("Mainline %q Branch %q Upstream %v", r.Mainline(), r.Branch(), r.Upstream())
	}
	if r := MustParse("6.8-rc3+"); r.String() != "6.8.0-rc3+" || r.Mainline() != "6.8.0-rc3" || !r.Upstream() {
		t.Errorf("String %q Mainline %q", r.String(), r.Mainline())
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParse(garbage) did not panic")
		}
	}()
	MustParse("garbage")
}

func TestRunning(t *testing.T) {
	rel, err := Running()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(rel); err != nil {
		t.Logf("the running kernel's release does not parse (the verdict would be unknown): %v", err)
	}
	t.Logf("running %s: %s", rel, Policy{}.Decide(rel).String())
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"5.4.0-1045-aws", "4.14.154-128.181.amzn2.x86_64", "3.10.0-1062.8.1.el7.x86_64", "4.15.0-67-generic",
		"6.8.0-rc3", "6.8.0-rc3+", "5.4", "4.19.0-6-amd64", "5.10.0-28-cloud-amd64", "4.19.81-coreos",
		"4.18.0-348.7.1.el8_5.x86_64", "6.8.0-rc3-00001-gabcdef12", "2.6.32.27", "5.4.0-050400-generic",
		"garbage", "", "5.", "4.12.14-122.37-default", "05.04.00",
	} {
		f.Add(s)
	}
	p := Policy{}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		v := p.Decide(s)
		if err != nil {
			if v.Known || v.Rule != nil || !strings.Contains(err.Error(), "kernel release ") {
				t.Fatalf("Parse(%q): %v; verdict %+v", s, err, v)
			}
			return
		}
		if v.Rule == nil {
			t.Fatalf("Decide(%q) used no rule: %+v", s, v)
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Parse(String() = %q): %v", s, r, r.String(), err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("Parse(%q) = %+v\nParse(%q) = %+v", s, plain(r), r.String(), plain(again))
		}
		if Compare(r, again) != 0 {
			t.Fatalf("Compare(%q, its String) != 0", s)
		}
	})
}
