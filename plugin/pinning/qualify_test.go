package pinning

import (
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/coreguard/coreguard/config"
)

func TestDecide(t *testing.T) {
	cfg, err := config.Parse([]byte("exemptNamespaces: [batch]"))
	if err != nil {
		t.Fatal(err)
	}
	pod := func(ns, parent string, ann map[string]string) *api.PodSandbox {
		return &api.PodSandbox{Name: "p", Namespace: ns, Annotations: ann, Linux: &api.LinuxPodSandbox{CgroupParent: parent}}
	}
	ctr := func(shares uint64, quota int64, period uint64) *api.Container {
		cpu := &api.LinuxCPU{Shares: api.UInt64(shares)}
		if quota != 0 {
			cpu.Quota, cpu.Period = api.Int64(quota), api.UInt64(period)
		}
		return &api.Container{Name: "c", Linux: &api.LinuxContainer{Resources: &api.LinuxResources{Cpu: cpu}}}
	}
	const g = "/kubepods/pod1234"
	tests := []struct {
		name string
		pod  *api.PodSandbox
		ctr  *api.Container
		cpus int
		why  string
		err  string
	}{
		{"guaranteed 4", pod("default", g, nil), ctr(4096, 400000, 100000), 4, "integer CPU request", ""},
		{"guaranteed without quota", pod("default", g, nil), ctr(2048, 0, 0), 2, "integer CPU request", ""},
		{"systemd guaranteed", pod("default", "kubepods-pod1234.slice", nil), ctr(1024, 100000, 100000), 1, "", ""},
		{"fractional", pod("default", g, nil), ctr(1536, 150000, 100000), 0, "not a whole number", ""},
		{"below one CPU", pod("default", g, nil), ctr(512, 50000, 100000), 0, "not a whole number", ""},
		{"limit differs", pod("default", g, nil), ctr(2048, 400000, 100000), 0, "differs from the request", ""},
		{"burstable cgroupfs", pod("default", "/kubepods/burstable/pod1", nil), ctr(4096, 400000, 100000), 0, "burstable", ""},
		{"burstable systemd", pod("default", "kubepods-burstable-pod1.slice", nil), ctr(4096, 0, 0), 0, "burstable", ""},
		{"besteffort", pod("default", "/kubepods/besteffort/pod1", nil), ctr(2, 0, 0), 0, "besteffort", ""},
		{"opt-out", pod("default", g, map[string]string{AnnotationExclusive: "false"}), ctr(4096, 0, 0), 0, "opted out", ""},
		{"opt-in explicit", pod("default", g, map[string]string{AnnotationExclusive: "true"}), ctr(4096, 0, 0), 4, "", ""},
		{"bad annotation", pod("default", g, map[string]string{AnnotationExclusive: "False"}), ctr(4096, 0, 0), 0, "", `"False" is not "true" or "false"`},
		{"exempt namespace", pod("batch", g, nil), ctr(4096, 0, 0), 0, `namespace "batch" is exempt`, ""},
		{"look-alike namespace", pod("batch-x", g, nil), ctr(4096, 0, 0), 4, "", ""},
		{"no resources", pod("default", g, nil), &api.Container{Name: "c"}, 0, "cpu.shares 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(cfg, tt.pod, tt.ctr)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || d.CPUs != tt.cpus || !strings.Contains(d.Reason, tt.why) {
				t.Fatalf("Decide = %+v, %v; want %d CPUs, reason with %q", d, err, tt.cpus, tt.why)
			}
		})
	}
}
