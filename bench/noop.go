// Package bench measures coreguard's hot path against a floor: the NRI
// CreateContainer round trip of coreguard next to a no-op plugin built on
// the same stub and connected the same way, the start-up time and resident
// memory of the coreguard binary, and (through `go run ./bench/report`) the
// allocator micro-benchmarks, all in one run and read as ratios. See
// README.md for how to run it and what the numbers mean.
package bench

import (
	"context"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// Noop is the floor plugin: CreateContainer answers with an empty
// adjustment and no updates. It subscribes to nothing else.
type Noop struct{}

// CreateContainer returns an empty adjustment.
func (Noop) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	return &api.ContainerAdjustment{}, nil, nil
}

// RunNoop connects the no-op plugin to the runtime's NRI socket with the
// same stub options coreguard uses (name, index, socket) and serves until
// ctx ends or the runtime closes the connection.
func RunNoop(ctx context.Context, socket string) error {
	st, err := stub.New(Noop{}, stub.WithPluginName("noop"), stub.WithPluginIdx("10"), stub.WithSocketPath(socket))
	if err != nil {
		return err
	}
	return st.Run(ctx)
}

// Carrier is a second floor: the no-op plugin answering every creation
// with a fixed cpuset adjustment and a precomputed update for each of a
// list of containers — what coreguard answers when it pins, without any of
// coreguard's work. Carrier / Noop is what NRI itself charges to carry N
// updates (marshalling, unmarshalling, the runtime side merging them);
// coreguard / Carrier is coreguard's own share.
type Carrier struct {
	mu      sync.Mutex
	adjust  *api.ContainerAdjustment
	updates []*api.ContainerUpdate
}

// Set fixes the answer: the creation gets cpus, the CFS quota (when not
// nil) and the annotations, and every container in ids gets an update to
// shared.
func (c *Carrier) Set(cpus string, quota *int64, annotations map[string]string, ids []string, shared string) {
	adj := &api.ContainerAdjustment{}
	if cpus != "" {
		adj.SetLinuxCPUSetCPUs(cpus)
	}
	if quota != nil {
		adj.SetLinuxCPUQuota(*quota)
	}
	for k, v := range annotations {
		adj.AddAnnotation(k, v)
	}
	updates := make([]*api.ContainerUpdate, 0, len(ids))
	for _, id := range ids {
		u := &api.ContainerUpdate{IgnoreFailure: true}
		u.SetContainerId(id)
		u.SetLinuxCPUSetCPUs(shared)
		updates = append(updates, u)
	}
	c.mu.Lock()
	c.adjust, c.updates = adj, updates
	c.mu.Unlock()
}

// CreateContainer returns the fixed answer.
func (c *Carrier) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.adjust == nil {
		return &api.ContainerAdjustment{}, nil, nil
	}
	return c.adjust, c.updates, nil
}

// RunCarrier connects c like RunNoop connects the no-op plugin.
func RunCarrier(ctx context.Context, socket string, c *Carrier) error {
	st, err := stub.New(c, stub.WithPluginName("carrier"), stub.WithPluginIdx("10"), stub.WithSocketPath(socket))
	if err != nil {
		return err
	}
	return st.Run(ctx)
}
