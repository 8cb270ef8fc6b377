package crioharness

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
	"sync"
	"time"

	"github.com/coreguard/coreguard/test/e2e/harness"
	"github.com/coreguard/coreguard/test/e2e/images"
)

var (
	imagesOnce sync.Once
	imagesPath string
	imagesErr  error
)

// imagesTarball builds the same OCI layout tarball as the containerd
// harness, once per test process, at the same cached path (reproducible,
// atomic rename).
func imagesTarball() (string, error) {
	imagesOnce.Do(func() {
		dir := filepath.Join(harness.CacheDir(), "images")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			imagesErr = err
			return
		}
		imagesPath = filepath.Join(dir, "e2e-images.tar")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		imagesErr = images.WriteTarball(ctx, imagesPath)
	})
	return imagesPath, imagesErr
}

// importImages copies both test images into CRI-O's private
// containers/storage with skopeo, before CRI-O starts. The layout names its
// images with containerd's io.containerd.image.name annotation; skopeo's
// oci: transport selects an image by org.opencontainers.image.ref.name, so
// a copy of the layout gets that annotation too.
func (r *Runtime) importImages() error {
	tarPath, err := imagesTarball()
	if err != nil {
		return fmt.Errorf("build images: %w", err)
	}
	layout := filepath.Join(r.p.Tmp, "layout")
	if err := untar(tarPath, layout); err != nil {
		return fmt.Errorf("unpack %s: %w", tarPath, err)
	}
	refs, err := nameLayout(layout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dest := fmt.Sprintf("containers-storage:[vfs@%s+%s]", r.p.Root, r.p.RunRoot)
	// skopeo (containers/image) keeps a blob info cache in
	// /var/lib/containers/cache, with no flag to move it: it runs in a
	// private mount namespace where /var/lib is a private empty dir.
	varLib := filepath.Join(r.p.Tmp, "var-lib")
	if err := os.MkdirAll(varLib, 0o755); err != nil {
		return err
	}
	for tag, ref := range refs {
		cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" /var/lib && exec "$@"`, varLib,
			Skopeo, "--policy", r.p.Policy, "copy", "--quiet", "oci:"+layout+":"+tag, dest+ref)
		cmd.Env = r.env()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("skopeo copy %s: %v\n%s", ref, err, out)
		}
	}
	return errors.Join(os.RemoveAll(layout), os.RemoveAll(varLib))
}

// nameLayout adds org.opencontainers.image.ref.name to every manifest of
// the layout's index and returns tag -> image name.
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
	for _, m := range manifests {
		mm, _ := m.(map[string]any)
		ann, _ := mm["annotations"].(map[string]any)
		name, _ := ann["io.containerd.image.name"].(string)
		if name == "" {
			continue
		}
		// "local.test/workload:1.0" -> tag "workload"
		tag := strings.SplitN(filepath.Base(name), ":", 2)[0]
		ann["org.opencontainers.image.ref.name"] = tag
		refs[tag] = name
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("%s names no image", path)
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
