// Package ocilayer builds reproducible images: the coreguard image
// (deploy/) and the e2e test images are made without Docker, and the same
// input must always give the same digest.
package ocilayer

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is every timestamp in the images.
var Epoch = time.Unix(0, 0).UTC()

// Entry is one directory (Name ends in "/") or file of a layer; Name has no
// leading slash.
type Entry struct {
	Name string
	Mode int64
	Data []byte
}

// Layer makes a gzip OCI layer of entries, in order, at a gzip level.
func Layer(entries []Entry, gzipLevel int) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: e.Mode, Size: int64(len(e.Data)),
			ModTime: Epoch, Format: tar.FormatPAX}
		if e.Name[len(e.Name)-1] == '/' {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzipLevel))
}

// Image is an OCI (not Docker media type) linux image of one layer whose
// config, dated Epoch and rooted at "/", configure fills in (entrypoint,
// cmd, env, user, labels...).
func Image(layer v1.Layer, arch string, configure func(*v1.ConfigFile)) (v1.Image, error) {
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.WorkingDir = "/"
	configure(cf)
	return mutate.ConfigFile(img, cf)
}

// ReadFiles reads a tarball (an image layout) into memory by file name,
// for the tests that check what was written.
func ReadFiles(r io.Reader) (map[string][]byte, error) {
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		files[h.Name] = b
	}
}
