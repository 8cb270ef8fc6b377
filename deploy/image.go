package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/coreguard/coreguard/internal/ocilayer"
)

// The image, as the Dockerfile builds it (deploy_test.go reads the
// Dockerfile and checks each of these against it).
const (
	// BinaryPath is where the static binary lives, and the entrypoint.
	BinaryPath = "/coreguard"
	// User is root: the NRI socket is root's (mode 0600) and so are the pod
	// cgroup files coreguard writes. No capability is needed (the DaemonSet
	// drops them all).
	User = "0:0"
	// SourceLabel names the source repository.
	SourceLabel = "https://github.com/coreguard/coreguard"
)

// Entrypoint and Cmd: `coreguard run` unless the container's args say
// otherwise (`coreguard version`, `coreguard topology`, ...).
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"run"}
	// Env is what `docker build` gives a scratch image.
	Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
)

// epoch is every timestamp in the image, so the same binary always gives
// the same digests (SOURCE_DATE_EPOCH=0 for the Dockerfile).
var epoch = ocilayer.Epoch

// Image builds the coreguard image around a static binary: one layer with
// the binary at BinaryPath (root, 0755), an OCI config with Entrypoint,
// Cmd, User and labels, fixed timestamps. version goes into the
// org.opencontainers.image.version label.
func Image(binary []byte, version, arch string) (v1.Image, error) {
	layer, err := binaryLayer(binary)
	if err != nil {
		return nil, err
	}
	return ocilayer.Image(layer, arch, func(cf *v1.ConfigFile) {
		cf.Config.Entrypoint = Entrypoint
		cf.Config.Cmd = Cmd
		cf.Config.User = User
		cf.Config.Env = Env
		cf.Config.Labels = Labels(version)
		cf.History = []v1.History{{Created: v1.Time{Time: epoch}, CreatedBy: "COPY coreguard " + BinaryPath, Comment: "coreguard image-tar"}}
	})
}

// Labels are the image's OCI labels.
func Labels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":  SourceLabel,
		"org.opencontainers.image.title":   "coreguard",
		"org.opencontainers.image.version": version,
	}
}

func binaryLayer(binary []byte) (v1.Layer, error) {
	return ocilayer.Layer([]ocilayer.Entry{{Name: BinaryPath[1:], Mode: 0o755, Data: binary}}, gzip.BestCompression)
}

// WriteOCIArchive writes images (one per platform) as an OCI image-layout
// tarball holding one multi-platform image named ref
// ("ghcr.io/coreguard/coreguard:v0.1.0"): an OCI image index listing each
// image with the platform its config names. That is what `ctr images
// import` and `kind load image-archive` read (each takes its node's
// platform). containerd names the image from the io.containerd.image.name
// annotation; the tag alone is in org.opencontainers.image.ref.name (for
// skopeo, podman). The file is written whole or not at all (temp file,
// rename), and is byte-for-byte the same for the same images.
func WriteOCIArchive(images []v1.Image, ref, tag, dst string) (err error) {
	if len(images) == 0 {
		return fmt.Errorf("no image to write")
	}
	var files []archiveFile
	have := map[v1.Hash]bool{}
	blob := func(h v1.Hash, data func() (io.ReadCloser, error), size int64) {
		if !have[h] {
			have[h] = true
			files = append(files, archiveFile{blobPath(h), data, size})
		}
	}
	var manifests []v1.Descriptor
	for _, img := range images {
		d, err := imageBlobs(img, blob)
		if err != nil {
			return err
		}
		manifests = append(manifests, d)
	}
	indexJSON, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: manifests})
	if err != nil {
		return err
	}
	indexHash, _, err := v1.SHA256(bytes.NewReader(indexJSON))
	if err != nil {
		return err
	}
	blob(indexHash, bytesOpener(indexJSON), int64(len(indexJSON)))
	layout, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIImageIndex,
		Size:      int64(len(indexJSON)),
		Digest:    indexHash,
		Annotations: map[string]string{
			"io.containerd.image.name":          ref,
			"org.opencontainers.image.ref.name": tag,
		},
	}}})
	if err != nil {
		return err
	}
	files = append([]archiveFile{
		{"oci-layout", bytesOpener([]byte(`{"imageLayoutVersion":"1.0.0"}`)), -1},
		{"index.json", bytesOpener(layout), -1},
	}, files...)

	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".image-*.tar")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	for _, file := range files {
		for _, d := range []string{"blobs/", "blobs/sha256/"} {
			if len(file.name) > len(d) && file.name[:len(d)] == d && !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
					return err
				}
			}
		}
		rc, err := file.data()
		if err != nil {
			return fmt.Errorf("%s: %w", file.name, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", file.name, err)
		}
		if file.size >= 0 && int64(len(data)) != file.size {
			return fmt.Errorf("%s: %d bytes, want %d", file.name, len(data), file.size)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: file.name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// imageBlobs hands blob one image's manifest, config and layers, and
// returns the manifest's descriptor with the platform its config names.
func imageBlobs(img v1.Image, blob func(v1.Hash, func() (io.ReadCloser, error), int64)) (v1.Descriptor, error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, err
	}
	blob(digest, bytesOpener(manifest), int64(len(manifest)))
	blob(cfgName, bytesOpener(config), int64(len(config)))
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		size, err := l.Size()
		if err != nil {
			return v1.Descriptor{}, err
		}
		blob(d, l.Compressed, size)
	}
	return v1.Descriptor{MediaType: mt, Size: int64(len(manifest)), Digest: digest,
		Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture}}, nil
}

// archiveFile is one file of the layout tarball; size -1 is unchecked.
type archiveFile struct {
	name string
	data func() (io.ReadCloser, error)
	size int64
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

func bytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
