package plugin_test

import (
	"context"
	"io"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"github.com/sirupsen/logrus"

	"github.com/coreguard/coreguard/config"
	"github.com/coreguard/coreguard/internal/nritest"
	"github.com/coreguard/coreguard/plugin"
	"github.com/coreguard/coreguard/topology/sysfsgen"
)

// BenchmarkCreateHandler times coreguard's own CreateContainer and
// StopContainer handlers, without NRI's transport, for a Guaranteed
// 4-CPU container on the 384-CPU topology with nothing else running: the
// share of the round trip that is coreguard's.
func BenchmarkCreateHandler(b *testing.B) {
	topo, err := sysfsgen.BuildShape(sysfsgen.EPYC384)
	if err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	empty := b.TempDir() // no cgroup tree, no kubelet checkpoint
	cfg, err := config.Parse([]byte("cgroupRoot: " + empty + "\nkubeletRootDir: " + empty))
	if err != nil {
		b.Fatal(err)
	}
	p, err := plugin.New(plugin.Options{Topology: topo, Log: log, Config: cfg, KernelRelease: "5.10.0"})
	if err != nil {
		b.Fatal(err)
	}
	pod := &api.PodSandbox{Id: "pod", Name: "db", Namespace: "default", Linux: &api.LinuxPodSandbox{CgroupParent: "/kubepods/podx",
		Namespaces: []*api.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "network"}, {Type: "mount"}}}}
	res := nritest.Resources{RequestMilli: 4000, LimitMilli: 4000}.Linux()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ctr := &api.Container{Id: "c", PodSandboxId: "pod", Name: "app", Linux: &api.LinuxContainer{Resources: res}}
		if _, _, err := p.CreateContainer(ctx, pod, ctr); err != nil {
			b.Fatal(err)
		}
		if _, err := p.StopContainer(ctx, pod, ctr); err != nil {
			b.Fatal(err)
		}
	}
}
