// Command imagetar writes coreguard's image as an OCI image-layout tarball
// without Docker: `make image-tar` runs it on the static binaries `make
// build-linux` made, one per architecture. The image is the one the
// Dockerfile builds (deploy.Image), for each platform, under one
// multi-platform name; the tarball loads with `ctr -n k8s.io images import
// FILE` and `kind load image-archive FILE`.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/coreguard/coreguard/deploy"
)

// binaries is the repeatable --binary flag: ARCH=PATH, or PATH for --arch.
type binaries []string

func (b *binaries) String() string     { return strings.Join(*b, ",") }
func (b *binaries) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	var bins binaries
	flag.Var(&bins, "binary", "a static coreguard binary (CGO_ENABLED=0) as ARCH=PATH (e.g. arm64=bin/linux-arm64/coreguard), or PATH for --arch; repeat for each platform (default bin/coreguard)")
	image := flag.String("image", "", "image name, e.g. ghcr.io/coreguard/coreguard (required)")
	tag := flag.String("tag", "", "image tag, e.g. v0.1.0 (required)")
	version := flag.String("version", "", "coreguard version for the org.opencontainers.image.version label (default: the tag)")
	arch := flag.String("arch", runtime.GOARCH, "the GOARCH of a --binary given without ARCH=")
	out := flag.String("o", "_output/coreguard-image.tar", "output tarball")
	flag.Parse()
	if len(bins) == 0 {
		bins = binaries{"bin/coreguard"}
	}
	if err := run(bins, *image, *tag, *version, *arch, *out); err != nil {
		fmt.Fprintf(os.Stderr, "imagetar: %v\n", err)
		os.Exit(1)
	}
}

func run(bins []string, image, tag, version, defaultArch, out string) error {
	if image == "" || tag == "" || strings.Contains(tag, ":") || strings.Contains(image, "@") {
		return fmt.Errorf("need --image NAME and --tag TAG (got %q, %q)", image, tag)
	}
	if version == "" {
		version = tag
	}
	var images []v1.Image
	var platforms []string
	seen := map[string]bool{}
	for _, b := range bins {
		arch, path, ok := strings.Cut(b, "=")
		if !ok {
			arch, path = defaultArch, b
		}
		if seen[arch] {
			return fmt.Errorf("--binary: two binaries for %s", arch)
		}
		seen[arch] = true
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%w (run `make build-linux` first)", err)
		}
		img, err := deploy.Image(data, version, arch)
		if err != nil {
			return err
		}
		images = append(images, img)
		platforms = append(platforms, "linux/"+arch)
	}
	ref := image + ":" + tag
	if err := deploy.WriteOCIArchive(images, ref, tag, out); err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s)\n", out, ref, strings.Join(platforms, ", "))
	return nil
}
