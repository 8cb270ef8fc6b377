// Package deploy holds coreguard's deployment files: the DaemonSet and
// ConfigMap (kubernetes/base, a kustomize base), the pre-installed plugin's
// configuration (nri/), runtime configuration snippets for containerd and
// CRI-O (containerd/, crio/), the kind cluster config (kind/), the alerts
// (prometheus/) and dashboard (grafana/), and the image definition both
// the Dockerfile and `make image-tar` build (image.go, imagetar/). Files
// embeds them so the tests check the files that ship.
package deploy

import "embed"

// Files are the deployment files, by their path under deploy/.
//
//go:embed kubernetes nri containerd crio kind prometheus grafana
var Files embed.FS
