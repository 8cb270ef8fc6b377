package e2e

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/coreguard/coreguard/internal/ocilayer"
	"github.com/coreguard/coreguard/test/e2e/harness"
)

// TestImage builds coreguard's image with `make image-tar` (the OCI tarball
// made without Docker, deploy/imagetar), imports it into each runtime the
// way an admin does on a node (containerd: `ctr -n k8s.io images import`,
// as `kind load image-archive` does; CRI-O: skopeo into its
// containers/storage), and runs `coreguard version` and `coreguard topology`
// in containers started from it. COREGUARD_IMAGE_TAR names an already
// built tarball instead.
func TestImage(t *testing.T) {
	harness.SkipIfUnavailable(t, "")
	tarPath := imageTar(t)
	ref := imageRef(t, tarPath)
	if got := imagePlatforms(t, tarPath); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("the image index holds %v, want linux/amd64 and linux/arm64", got)
	}
	forEachRuntime(t, func(t *testing.T, x expect) { testImage(t, x, tarPath, ref) })
}

func testImage(t *testing.T, x expect, tarPath, ref string) {
	rt := startRuntime(t, x)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t0 := time.Now()
	if err := rt.ImportImage(ctx, tarPath, ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("imported %s in %v", ref, time.Since(t0).Round(time.Millisecond))

	// What CRI sees of the image: root user, as the Dockerfile says.
	st, err := rt.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Verbose: true})
	if err != nil || st.GetImage() == nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	if uid := st.GetImage().GetUid(); uid == nil || uid.GetValue() != 0 {
		t.Errorf("image user uid %v, want 0", uid)
	}
	if info := st.GetInfo()["info"]; !strings.Contains(info, `"Entrypoint":["/coreguard"]`) || !strings.Contains(info, `"Cmd":["run"]`) {
		t.Errorf("image config in CRI verbose info lacks entrypoint /coreguard and cmd run:\n%s", info)
	}

	pod, err := rt.RunPod(ctx, harness.PodOptions{Namespace: "kube-system"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("version", func(t *testing.T) {
		c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: "version", Image: ref, Args: []string{"version"}})
		if err != nil {
			t.Fatal(err)
		}
		logs, err := c.WaitForLog(ctx, "coreguard ")
		if err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`coreguard \S+ \(go1\.[0-9.]+, linux/` + runtime.GOARCH + `\)`)
		if !want.MatchString(logs) {
			t.Errorf("coreguard version printed %q, want %s", strings.TrimSpace(logs), want)
		}
		if code := waitExit(ctx, t, c); code != 0 {
			t.Errorf("coreguard version exited %d", code)
		}
		t.Logf("in the container: %s", strings.TrimSpace(logs))
	})
	// The static binary does real work in the image: it reads this
	// machine's topology from the container's (read-only) /sys.
	t.Run("topology", func(t *testing.T) {
		c, err := pod.RunContainer(ctx, harness.ContainerOptions{Name: "topology", Image: ref, Args: []string{"topology", "--json"}})
		if err != nil {
			t.Fatal(err)
		}
		if code := waitExit(ctx, t, c); code != 0 {
			logs, _ := c.Logs()
			t.Fatalf("coreguard topology exited %d:\n%s", code, logs)
		}
		logs, err := c.Logs()
		if err != nil {
			t.Fatal(err)
		}
		var topo struct {
			Online string `json:"online"`
		}
		if err := json.Unmarshal([]byte(logs), &topo); err != nil || topo.Online == "" {
			t.Fatalf("coreguard topology --json printed %q: %v", logs, err)
		}
		host, err := os.ReadFile("/sys/devices/system/cpu/online")
		if err != nil {
			t.Fatal(err)
		}
		if topo.Online != strings.TrimSpace(string(host)) {
			t.Errorf("online CPUs seen in the container %q, host %q", topo.Online, strings.TrimSpace(string(host)))
		}
	})
}

// imageTar returns $COREGUARD_IMAGE_TAR or runs `make image-tar` in the
// module root and returns its tarball.
func imageTar(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COREGUARD_IMAGE_TAR"); p != "" {
		return p
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "coreguard-image.tar")
	cmd := exec.Command("make", "--no-print-directory", "-C", root, "image-tar", "IMAGE_TAR="+out, "BIN="+t.TempDir())
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make image-tar: %v\n%s", err, b)
	}
	t.Logf("make image-tar:\n%s", strings.TrimSpace(string(b)))
	return out
}

// imageRef reads the name the tarball gives its image (index.json's
// io.containerd.image.name, which ctr imports it as, and the harness names
// it in CRI-O's storage).
func imageRef(t *testing.T, tarPath string) string {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no index.json", tarPath)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "index.json" {
			continue
		}
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&index); err != nil || len(index.Manifests) != 1 {
			t.Fatalf("index.json: %v (%d manifests)", err, len(index.Manifests))
		}
		ref := index.Manifests[0].Annotations["io.containerd.image.name"]
		if ref == "" {
			t.Fatal("index.json names no image (io.containerd.image.name)")
		}
		return ref
	}
}

// imagePlatforms reads the tarball's image index and returns the platform
// of each image in it, checking that each image's config names the same.
func imagePlatforms(t *testing.T, tarPath string) []string {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, err := ocilayer.ReadFiles(f)
	if err != nil {
		t.Fatal(err)
	}
	type descriptor struct {
		Digest   string `json:"digest"`
		Platform struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
		} `json:"platform"`
	}
	decode := func(name string, v any) {
		if err := json.Unmarshal(files[name], v); err != nil {
			t.Fatalf("%s in %s: %v", name, tarPath, err)
		}
	}
	blob := func(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }
	var layout, index struct{ Manifests []descriptor }
	decode("index.json", &layout)
	decode(blob(layout.Manifests[0].Digest), &index)
	var out []string
	for _, m := range index.Manifests {
		var manifest struct{ Config descriptor }
		decode(blob(m.Digest), &manifest)
		var cfg struct{ OS, Architecture string }
		decode(blob(manifest.Config.Digest), &cfg)
		if cfg.OS != m.Platform.OS || cfg.Architecture != m.Platform.Architecture {
			t.Errorf("the index says %s/%s, the image's config %s/%s", m.Platform.OS, m.Platform.Architecture, cfg.OS, cfg.Architecture)
		}
		out = append(out, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	return out
}

// waitExit waits for the container to exit and returns its exit code.
func waitExit(ctx context.Context, t *testing.T, c *harness.Container) int32 {
	t.Helper()
	for {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.CRI.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.CRI.GetExitCode()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s still %s", c.Name, st.CRI.GetState())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
