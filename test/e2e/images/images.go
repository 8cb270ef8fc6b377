// Package images builds the e2e test images locally, without Docker or a
// registry: one static Go binary (test/images/workload) in a single layer,
// written as an OCI image-layout tarball that `ctr images import` accepts.
package images

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/coreguard/coreguard/internal/ocilayer"
)

const (
	// Workload runs the workload binary; its mode comes from the container's args.
	Workload = "local.test/workload:1.0"
	// Pause is the sandbox image: the same binary in "sleep" mode.
	Pause = "local.test/pause:1.0"

	workloadPkg = "github.com/coreguard/coreguard/test/images/workload"
	binPath     = "/workload"
)

// BuildBinary compiles the workload program statically for linux/GOARCH into dir.
// It must run inside the coreguard module (any test package directory is).
func BuildBinary(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "workload")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, workloadPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", workloadPkg, err, b)
	}
	return out, nil
}

// WriteTarball builds the workload binary and writes an OCI layout tarball
// holding both images (Workload and Pause) to dst, atomically.
func WriteTarball(ctx context.Context, dst string) error {
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin, err := BuildBinary(ctx, tmp)
	if err != nil {
		return err
	}
	layer, err := binaryLayer(bin)
	if err != nil {
		return err
	}
	lp, err := layout.Write(filepath.Join(tmp, "layout"), empty.Index)
	if err != nil {
		return fmt.Errorf("create OCI layout: %w", err)
	}
	for _, im := range []struct {
		ref  string
		args []string
	}{{Workload, []string{"sleep"}}, {Pause, []string{"sleep"}}} {
		img, err := image(layer, im.args)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.ref, err)
		}
		// containerd's importer names images from this annotation
		// (org.opencontainers.image.ref.name would need ctr --base-name).
		ann := map[string]string{"io.containerd.image.name": im.ref}
		if err := lp.AppendImage(img, layout.WithAnnotations(ann)); err != nil {
			return fmt.Errorf("write image %s: %w", im.ref, err)
		}
	}
	part := filepath.Join(tmp, "images.tar")
	if err := tarDir(filepath.Join(tmp, "layout"), part); err != nil {
		return err
	}
	return os.Rename(part, dst)
}

// image is an OCI (not Docker media type) image running the binary with
// default args; the container's CRI args replace Cmd.
func image(layer v1.Layer, cmd []string) (v1.Image, error) {
	return ocilayer.Image(layer, runtime.GOARCH, func(cf *v1.ConfigFile) {
		cf.Config.Entrypoint = []string{binPath}
		cf.Config.Cmd = cmd
		cf.Config.Env = []string{"PATH=/"}
	})
}

// binaryLayer makes a gzip layer with the binary and the mount points runc
// and containerd expect to exist or create.
func binaryLayer(bin string) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var entries []ocilayer.Entry
	for _, d := range []string{"dev/", "etc/", "proc/", "sys/"} {
		entries = append(entries, ocilayer.Entry{Name: d, Mode: 0o755})
	}
	entries = append(entries, ocilayer.Entry{Name: "tmp/", Mode: 0o1777}, ocilayer.Entry{Name: binPath[1:], Mode: 0o755, Data: data})
	return ocilayer.Layer(entries, gzip.BestSpeed)
}
