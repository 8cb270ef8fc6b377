package harness

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// NoHostDevicesHandler is a runtime handler both runtimes are configured
// with, the default runc with privileged_without_host_devices.
const NoHostDevicesHandler = "runc-no-host-devices"

// PodOptions describes a pod as kubelet knows it before RunPodSandbox.
type PodOptions struct {
	Name      string // default "pod-N"
	Namespace string // default "default"
	UID       string // default random UUID
	// Containers are the pod spec's container resources; they decide the
	// QoS class, the cgroup parent, the sandbox's Linux.Resources and the
	// pod cgroup values. Containers created later should match them.
	Containers []Resources
	// HostNetwork shares the node's network namespace (NamespaceOption
	// Network=NODE, no CNI, no hostname), as kubelet does for hostNetwork
	// pods. Default: the pod's own network namespace, set up by CNI
	// (loopback only, see cni.go).
	HostNetwork bool
	HostPID     bool
	HostIPC     bool
	Privileged  bool // any container in the pod is privileged
	// RuntimeHandler is the pod's RuntimeClass handler ("" the default;
	// NoHostDevicesHandler is configured on both runtimes).
	RuntimeHandler string
	Labels         map[string]string
	Annotations    map[string]string
	// NoPodCgroup skips EnsurePodCgroup (kubelet always does it): the pod
	// cgroup is then created by runc with default, unlimited values.
	NoPodCgroup bool
}

// Pod is a running sandbox.
type Pod struct {
	ID           string
	QoS          QoS
	UID          string
	CgroupParent string
	Config       *runtimeapi.PodSandboxConfig
	Containers   []Resources

	rt *Runtime
}

var podSeq atomic.Int64

// NewUID returns a random RFC 4122 version 4 UUID, like a pod UID.
func NewUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// PodConfig builds the PodSandboxConfig kubelet would send: the pod's own
// network namespace (or the host's with HostNetwork), kubelet's labels and
// annotations, the QoS cgroup parent and the summed pod resources.
func (r *Runtime) PodConfig(o PodOptions) (*runtimeapi.PodSandboxConfig, QoS) {
	if o.Name == "" {
		o.Name = fmt.Sprintf("pod-%d", podSeq.Add(1))
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.UID == "" {
		o.UID = NewUID()
	}
	qos := QoSOf(o.Containers...)
	labels := map[string]string{
		"io.kubernetes.pod.name":      o.Name,
		"io.kubernetes.pod.namespace": o.Namespace,
		"io.kubernetes.pod.uid":       o.UID,
	}
	maps.Copy(labels, o.Labels)
	ann := map[string]string{
		"kubernetes.io/config.source": "api",
		"kubernetes.io/config.seen":   "2026-01-01T00:00:00Z",
	}
	maps.Copy(ann, o.Annotations)
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_POD,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	// kubelet sets the pod's name as hostname, and none for host-network
	// pods (runc refuses a hostname without a private UTS namespace, which
	// containerd does not make for them).
	hostname := o.Name
	if o.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
		hostname = ""
	}
	if o.HostPID {
		ns.Pid = runtimeapi.NamespaceMode_NODE
	}
	if o.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	// kubelet sums requests and whatever limits exist (PodLimits), unlike
	// the pod cgroup, which gets a limit only when every container has one.
	var totals Resources
	for _, c := range o.Containers {
		c = c.defaulted()
		totals.CPURequest += c.CPURequest
		totals.CPULimit += c.CPULimit
		totals.MemLimit += c.MemLimit
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: o.Name, Uid: o.UID, Namespace: o.Namespace},
		Hostname:     hostname,
		LogDirectory: filepath.Join(r.PodLogDir, o.Namespace+"_"+o.Name+"_"+o.UID),
		Labels:       labels,
		Annotations:  ann,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: CgroupParentFor(r.CgroupRoot, qos, o.UID),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: ns,
				Privileged:       o.Privileged,
			},
			Resources: LinuxResources(totals),
		},
	}, qos
}

// RunPod creates the pod cgroup (unless NoPodCgroup) and runs the sandbox.
func (r *Runtime) RunPod(ctx context.Context, o PodOptions) (*Pod, error) {
	cfg, qos := r.PodConfig(o)
	uid := cfg.Metadata.Uid
	if !o.NoPodCgroup {
		if err := EnsurePodCgroup(r.CgroupRoot, qos, uid, o.Containers); err != nil {
			return nil, fmt.Errorf("pod %s cgroup: %w", cfg.Metadata.Name, err)
		}
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return nil, err
	}
	resp, err := r.CRI.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: o.RuntimeHandler})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox %s (%s): %w", cfg.Metadata.Name, qos, err)
	}
	return &Pod{
		ID: resp.PodSandboxId, QoS: qos, UID: uid, CgroupParent: cfg.Linux.CgroupParent,
		Config: cfg, Containers: o.Containers, rt: r,
	}, nil
}

// Stop stops the sandbox and all its containers.
func (p *Pod) Stop(ctx context.Context) error {
	if _, err := p.rt.CRI.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.ID}); err != nil {
		return fmt.Errorf("StopPodSandbox %s: %w", p.Config.Metadata.Name, err)
	}
	return nil
}

// Remove removes the (stopped) sandbox and its containers.
func (p *Pod) Remove(ctx context.Context) error {
	if _, err := p.rt.CRI.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.ID}); err != nil {
		return fmt.Errorf("RemovePodSandbox %s: %w", p.Config.Metadata.Name, err)
	}
	return nil
}

// Status returns the verbose sandbox status.
func (p *Pod) Status(ctx context.Context) (*runtimeapi.PodSandboxStatusResponse, error) {
	st, err := p.rt.CRI.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.ID, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("PodSandboxStatus %s: %w", p.Config.Metadata.Name, err)
	}
	return st, nil
}

// ListContainers lists the pod's containers, in any state.
func (p *Pod) ListContainers(ctx context.Context) ([]*runtimeapi.Container, error) {
	resp, err := p.rt.CRI.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: p.ID},
	})
	if err != nil {
		return nil, fmt.Errorf("ListContainers %s: %w", p.Config.Metadata.Name, err)
	}
	return resp.Containers, nil
}
