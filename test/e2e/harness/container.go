package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerOptions describes one container of a pod spec.
type ContainerOptions struct {
	Name       string   // default "c-N"
	Attempt    uint32   // kubelet's restart count: a retry is a new container of the same name
	Image      string   // default WorkloadImage
	Command    []string // the pod spec's command; default the image's entrypoint
	Args       []string // workload mode and arguments; default ["sleep"]
	Resources  Resources
	Privileged bool
	// Volumes are the pod's volumes this container mounts (read-write):
	// container path -> host path.
	Volumes map[string]string
	// HostPID, HostIPC, HostNetwork set the host's namespace on the
	// container's own config only, the sandbox's left as it is: what a
	// direct CRI call can ask for and kubelet never does.
	HostPID, HostIPC, HostNetwork bool
	Labels                        map[string]string
	Annotations                   map[string]string
	Env                           map[string]string
}

// Container is a created CRI container.
type Container struct {
	ID      string
	Name    string
	Pod     *Pod
	Config  *runtimeapi.ContainerConfig
	LogPath string // absolute CRI log file
}

// ContainerConfig builds the ContainerConfig kubelet would send.
func (p *Pod) ContainerConfig(ctx context.Context, o ContainerOptions) (*runtimeapi.ContainerConfig, error) {
	if o.Name == "" {
		o.Name = fmt.Sprintf("c-%d", podSeq.Add(1))
	}
	if o.Image == "" {
		o.Image = WorkloadImage
	}
	if o.Args == nil {
		o.Args = []string{"sleep"}
	}
	imageID, err := p.rt.ImageID(ctx, o.Image)
	if err != nil {
		return nil, err
	}
	md := p.Config.Metadata
	labels := map[string]string{
		"io.kubernetes.container.name": o.Name,
		"io.kubernetes.pod.name":       md.Name,
		"io.kubernetes.pod.namespace":  md.Namespace,
		"io.kubernetes.pod.uid":        md.Uid,
	}
	maps.Copy(labels, o.Labels)
	ann := map[string]string{
		"io.kubernetes.container.restartCount":             fmt.Sprint(o.Attempt),
		"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
		"io.kubernetes.container.terminationMessagePolicy": "File",
		"io.kubernetes.pod.terminationGracePeriod":         "30",
	}
	maps.Copy(ann, o.Annotations)
	var envs []*runtimeapi.KeyValue
	for _, k := range slices.Sorted(maps.Keys(o.Env)) {
		envs = append(envs, &runtimeapi.KeyValue{Key: k, Value: []byte(o.Env[k])})
	}
	res := LinuxResources(o.Resources)
	res.OomScoreAdj = OOMScoreAdj(p.QoS, o.Resources, memCapacity())
	podNS := p.Config.Linux.SecurityContext.NamespaceOptions
	ns := &runtimeapi.NamespaceOption{Network: podNS.Network, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: podNS.Ipc}
	if podNS.Pid == runtimeapi.NamespaceMode_NODE || o.HostPID {
		ns.Pid = runtimeapi.NamespaceMode_NODE
	}
	if o.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	if o.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns, Privileged: o.Privileged}
	if !o.Privileged {
		// As kubelet with seccompDefault (or a restricted pod): RuntimeDefault.
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	var mounts []*runtimeapi.Mount
	for _, dst := range slices.Sorted(maps.Keys(o.Volumes)) {
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: dst, HostPath: o.Volumes[dst]})
	}
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: o.Name, Attempt: o.Attempt},
		Mounts:   mounts,
		// kubelet passes the resolved image ID and, separately, the name
		// from the pod spec.
		Image:       &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: o.Image},
		Command:     o.Command,
		Args:        o.Args,
		Envs:        envs,
		Labels:      labels,
		Annotations: ann,
		LogPath:     filepath.Join(o.Name, "0.log"),
		Linux:       &runtimeapi.LinuxContainerConfig{Resources: res, SecurityContext: sc},
	}, nil
}

// CreateContainer creates (not starts) a container in the pod.
func (p *Pod) CreateContainer(ctx context.Context, o ContainerOptions) (*Container, error) {
	cfg, err := p.ContainerConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(p.Config.LogDirectory, cfg.LogPath)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	resp, err := p.rt.CRI.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.ID, Config: cfg, SandboxConfig: p.Config,
	})
	if err != nil {
		return nil, fmt.Errorf("CreateContainer %s in pod %s: %w", cfg.Metadata.Name, p.Config.Metadata.Name, err)
	}
	return &Container{ID: resp.ContainerId, Name: cfg.Metadata.Name, Pod: p, Config: cfg, LogPath: logPath}, nil
}

// RunContainer creates and starts a container.
func (p *Pod) RunContainer(ctx context.Context, o ContainerOptions) (*Container, error) {
	c, err := p.CreateContainer(ctx, o)
	if err != nil {
		return nil, err
	}
	return c, c.Start(ctx)
}

func (c *Container) Start(ctx context.Context) error {
	if _, err := c.Pod.rt.CRI.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ID}); err != nil {
		return fmt.Errorf("StartContainer %s: %w", c.Name, err)
	}
	return nil
}

// Stop stops the container, SIGKILL after timeout seconds.
func (c *Container) Stop(ctx context.Context, timeout int64) error {
	if _, err := c.Pod.rt.CRI.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.ID, Timeout: timeout}); err != nil {
		return fmt.Errorf("StopContainer %s: %w", c.Name, err)
	}
	return nil
}

func (c *Container) Remove(ctx context.Context) error {
	if _, err := c.Pod.rt.CRI.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.ID}); err != nil {
		return fmt.Errorf("RemoveContainer %s: %w", c.Name, err)
	}
	return nil
}

// ContainerStatus is the verbose CRI status with containerd's info parsed.
type ContainerStatus struct {
	CRI *runtimeapi.ContainerStatus
	Pid int
	// Spec is the OCI spec as created, after NRI adjustments (unlike
	// CRI.Resources, which echoes the request).
	Spec *specs.Spec
	Info map[string]string // raw verbose info
}

// Status returns the verbose status.
func (c *Container) Status(ctx context.Context) (*ContainerStatus, error) {
	resp, err := c.Pod.rt.CRI.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.ID, Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("ContainerStatus %s: %w", c.Name, err)
	}
	st := &ContainerStatus{CRI: resp.Status, Info: resp.Info}
	var info struct {
		Pid         int         `json:"pid"`
		RuntimeSpec *specs.Spec `json:"runtimeSpec"`
	}
	if raw, ok := resp.Info["info"]; ok {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return nil, fmt.Errorf("ContainerStatus %s: parse verbose info: %w", c.Name, err)
		}
	}
	st.Pid, st.Spec = info.Pid, info.RuntimeSpec
	return st, nil
}

// memCapacity is the node memory kubelet scales burstable OOM scores by.
func memCapacity() int64 {
	var mem int64
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		_, _ = fmt.Sscanf(string(b), "MemTotal: %d kB", &mem)
	}
	return mem * 1024
}
