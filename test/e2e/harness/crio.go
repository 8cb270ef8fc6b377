package harness

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Conmon and Skopeo come from Debian (hack/install-crio-deps.sh).
const (
	Conmon = "/usr/bin/conmon"
	Skopeo = "skopeo"
)

// crioBackend runs CRI-O (crio.conf plus a private --config-dir, vfs
// storage, runc through runcwrap, conmon); images are copied into its
// containers/storage with skopeo, before it starts.
type crioBackend struct{ p crioPaths }

func (*crioBackend) name() string             { return "CRI-O" }
func (*crioBackend) tempPrefix() string       { return "co" }
func (*crioBackend) cgroupPrefix() string     { return "/cgcrio-" }
func (*crioBackend) importsBeforeStart() bool { return true }

func (b *crioBackend) layout(r *Runtime) {
	b.p = newCRIOPaths(r.Dir)
	r.Address, r.NRISocket = b.p.Address, b.p.NRISocket
	r.PluginPath, r.PluginConfigPath = b.p.PluginPath, b.p.PluginConfigPath
	r.ConfigPath, r.ConfigDir, r.LogPath, r.PodLogDir = b.p.Config, b.p.ConfigDir, b.p.Log, b.p.PodLogs
	r.NamespacesDir = b.p.Namespaces
}

func (b *crioBackend) prepare(r *Runtime) error {
	for _, d := range []string{b.p.ConfigDir, b.p.Root, b.p.RunRoot, b.p.Run, b.p.Run + "/exits", b.p.Lib,
		b.p.RuncRoot, b.p.Namespaces, b.p.CNIConf, b.p.Tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		b.p.Config:         renderCRIOConfig(b.p, r.opts),
		b.p.StorageConf:    storageConf(b.p),
		b.p.RegistriesConf: registriesConf,
		b.p.Policy:         policyJSON,
	}
	if !r.opts.NoCNI {
		// The same loopback-only network as containerd's (cni.go).
		files[filepath.Join(b.p.CNIConf, cniConfName)] = cniConflist()
	}
	for name, text := range r.opts.DropIns {
		if name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("drop-in name %q", name)
		}
		files[filepath.Join(b.p.ConfigDir, name)] = strings.ReplaceAll(text, "{{DIR}}", r.Dir)
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// env is CRI-O's (and skopeo's) environment: private containers config.
func (b *crioBackend) env() []string {
	return append(os.Environ(),
		"CONTAINERS_STORAGE_CONF="+b.p.StorageConf,
		"CONTAINERS_REGISTRIES_CONF="+b.p.RegistriesConf,
		"TMPDIR="+b.p.Tmp,
	)
}

func (b *crioBackend) command(r *Runtime) *exec.Cmd {
	cmd := exec.Command(filepath.Join(r.opts.BinDir, "crio"), "--config", b.p.Config, "--config-dir", b.p.ConfigDir)
	cmd.Env = b.env()
	if r.opts.OwnProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	return cmd
}

// importTarball copies every image of an OCI layout tarball into CRI-O's
// private containers/storage with skopeo (before CRI-O starts, or while it
// runs: containers/storage locks its files, and CRI-O reads the store on
// every ImageStatus). The layout names its images with containerd's
// io.containerd.image.name annotation; skopeo's oci: transport selects an
// image by org.opencontainers.image.ref.name, so an unpacked copy of the
// layout gets that annotation too.
func (b *crioBackend) importTarball(ctx context.Context, r *Runtime, tarPath string) error {
	tmp, err := os.MkdirTemp(b.p.Tmp, "import")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	layout := filepath.Join(tmp, "layout")
	if err := untar(tarPath, layout); err != nil {
		return fmt.Errorf("unpack %s: %w", tarPath, err)
	}
	refs, err := nameLayout(layout)
	if err != nil {
		return err
	}
	dest := fmt.Sprintf("containers-storage:[vfs@%s+%s]", b.p.Root, b.p.RunRoot)
	// skopeo (containers/image) keeps a blob info cache in
	// /var/lib/containers/cache, with no flag to move it: it runs in a
	// private mount namespace where /var/lib is a private empty dir.
	varLib := filepath.Join(tmp, "var-lib")
	if err := os.MkdirAll(varLib, 0o755); err != nil {
		return err
	}
	for tag, ref := range refs {
		cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" /var/lib && exec "$@"`, varLib,
			Skopeo, "--policy", b.p.Policy, "copy", "--quiet", "oci:"+layout+":"+tag, dest+ref)
		cmd.Env = b.env()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("skopeo copy %s: %v\n%s", ref, err, out)
		}
	}
	return nil
}

// nameLayout adds org.opencontainers.image.ref.name to every manifest of
// the layout's index named by io.containerd.image.name and returns its
// value (the tag skopeo selects) -> image name.
func nameLayout(dir string) (map[string]string, error) {
	path := filepath.Join(dir, "index.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var index map[string]any
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	manifests, _ := index["manifests"].([]any)
	refs := map[string]string{}
	for i, m := range manifests {
		mm, _ := m.(map[string]any)
		ann, _ := mm["annotations"].(map[string]any)
		name, _ := ann["io.containerd.image.name"].(string)
		if name == "" {
			continue
		}
		tag := fmt.Sprintf("image-%d", i)
		ann["org.opencontainers.image.ref.name"] = tag
		refs[tag] = name
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("%s names no image (io.containerd.image.name)", path)
	}
	out, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	return refs, os.WriteFile(path, out, 0o644)
}

// untar extracts a tarball of regular files and directories into dir.
func untar(tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") {
			return fmt.Errorf("unsafe path %q", h.Name)
		}
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected entry %q (type %c)", h.Name, h.Typeflag)
		}
	}
}
