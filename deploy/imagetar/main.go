// Command imagetar writes coreguard's image as an OCI image-layout tarball
// without Docker: `make image-tar` runs it on the static binary `make build`
// made. The image is the one the Dockerfile builds (deploy.Image), and the
// tarball loads with `ctr -n k8s.io images import FILE` and
// `kind load image-archive FILE`.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/coreguard/coreguard/deploy"
)

func main() {
	binary := flag.String("binary", "bin/coreguard", "the static coreguard binary (CGO_ENABLED=0)")
	image := flag.String("image", "", "image name, e.g. ghcr.io/coreguard/coreguard (required)")
	tag := flag.String("tag", "", "image tag, e.g. v0.1.0 (required)")
	version := flag.String("version", "", "coreguard version for the org.opencontainers.image.version label (default: the tag)")
	arch := flag.String("arch", runtime.GOARCH, "the binary's GOARCH")
	out := flag.String("o", "_output/coreguard-image.tar", "output tarball")
	flag.Parse()
	if err := run(*binary, *image, *tag, *version, *arch, *out); err != nil {
		fmt.Fprintf(os.Stderr, "imagetar: %v\n", err)
		os.Exit(1)
	}
}

func run(binary, image, tag, version, arch, out string) error {
	if image == "" || tag == "" || strings.Contains(tag, ":") || strings.Contains(image, "@") {
		return fmt.Errorf("need --image NAME and --tag TAG (got %q, %q)", image, tag)
	}
	if version == "" {
		version = tag
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("%w (run `make build` first)", err)
	}
	img, err := deploy.Image(data, version, arch)
	if err != nil {
		return err
	}
	ref := image + ":" + tag
	if err := deploy.WriteOCIArchive(img, ref, tag, out); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s, linux/%s)\n", out, ref, d, arch)
	return nil
}
