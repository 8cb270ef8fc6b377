package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreguard/coreguard/test/e2e/images"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Image names every Runtime has imported.
const (
	WorkloadImage = images.Workload
	PauseImage    = images.Pause
)

var (
	imagesOnce sync.Once
	imagesPath string
	imagesErr  error
)

// imagesTarball builds the image tarball once per test process into the
// cache dir. The build is reproducible and the file is replaced by an atomic
// rename, so concurrent test binaries cannot see a half-written file.
func imagesTarball() (string, error) {
	imagesOnce.Do(func() {
		dir := filepath.Join(CacheDir(), "images")
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

// ImportImage makes the images of an OCI layout tarball (named by
// io.containerd.image.name annotations, as deploy/imagetar and the test
// images write them) known to the running runtime, the way an admin loads
// an image on a node: containerd with `ctr -n k8s.io images import`, CRI-O
// with skopeo into its containers/storage. It waits until CRI resolves refs.
func (r *Runtime) ImportImage(ctx context.Context, tarPath string, refs ...string) error {
	if err := r.b.importTarball(ctx, r, tarPath); err != nil {
		return err
	}
	return r.waitImages(ctx, refs...)
}

// waitImages polls CRI until it resolves every ref: containerd's CRI
// learns about imported images from events, a moment after ctr returns.
func (r *Runtime) waitImages(ctx context.Context, refs ...string) error {
	for _, ref := range refs {
		for {
			_, err := r.ImageID(ctx, ref)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// ImageID resolves a name to the image ID, which kubelet passes in
// ContainerConfig.Image.Image (the name goes to UserSpecifiedImage).
func (r *Runtime) ImageID(ctx context.Context, ref string) (string, error) {
	st, err := r.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		return "", fmt.Errorf("CRI ImageStatus %s: %w", ref, err)
	}
	if st.GetImage() == nil {
		return "", fmt.Errorf("image %s not known to CRI after import", ref)
	}
	return st.GetImage().GetId(), nil
}
