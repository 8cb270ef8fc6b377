package images

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coreguard/coreguard/internal/ocilayer"
)

// TestWriteTarball checks the layout shape `ctr images import` relies on
// (the import itself is covered by the e2e tests, which need root).
func TestWriteTarball(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dst := filepath.Join(t.TempDir(), "images.tar")
	if err := WriteTarball(ctx, dst); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := ocilayer.ReadFiles(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Errorf("no oci-layout file; have %d entries", len(files))
	}
	var index struct {
		Manifests []struct {
			MediaType   string            `json:"mediaType"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	names := map[string]bool{}
	for _, m := range index.Manifests {
		names[m.Annotations["io.containerd.image.name"]] = true
		if m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("manifest media type %q", m.MediaType)
		}
	}
	if !names[Workload] || !names[Pause] || len(index.Manifests) != 2 {
		t.Errorf("index.json names %v, want %s and %s", names, Workload, Pause)
	}
}
