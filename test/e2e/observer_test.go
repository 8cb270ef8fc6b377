package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// observer is a second NRI plugin, in the test process, that records what
// the runtime hands a (re)connecting plugin in Synchronize: the state
// coreguard rebuilds itself from.
type observer struct {
	synced chan synced
}

// synced is what one Synchronize carried.
type synced struct {
	pods []*api.PodSandbox
	ctrs []*api.Container
}

func (o *observer) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	o.synced <- synced{pods, ctrs}
	return nil, nil
}

// PostStartContainer is here because a stub needs at least one event.
func (o *observer) PostStartContainer(context.Context, *api.PodSandbox, *api.Container) error {
	return nil
}

// observeSync connects an observer to the runtime's NRI socket, returns
// the containers of its Synchronize by ID and disconnects.
func observeSync(t *testing.T, socket string) map[string]*api.Container {
	t.Helper()
	out := map[string]*api.Container{}
	for _, c := range observeSyncAll(t, socket).ctrs {
		out[c.GetId()] = c
	}
	return out
}

// observeSyncAll is observeSync returning pods and containers as listed.
func observeSyncAll(t *testing.T, socket string) synced {
	t.Helper()
	o := &observer{synced: make(chan synced, 1)}
	st, err := stub.New(o, stub.WithPluginName("observer"), stub.WithPluginIdx("90"), stub.WithSocketPath(socket))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Start(ctx); err != nil {
		t.Fatalf("observer plugin: %v", err)
	}
	defer st.Stop()
	select {
	case s := <-o.synced:
		return s
	case <-ctx.Done():
		t.Fatal("observer plugin: no Synchronize within 10 s")
	}
	return synced{}
}
