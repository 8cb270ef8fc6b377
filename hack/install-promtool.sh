#!/usr/bin/env bash
# Builds promtool, Prometheus' own checker, from the Prometheus module through
# the Go module proxy into a cache dir, for the tests that check the shipped
# alerts and dashboard with it (deploy/promtool_test.go: `promtool check
# rules`, `promtool test rules`, `promtool check metrics`); install-tools.sh
# (make deps-tools) runs it. Idempotent: a promtool already built at this
# version is kept. Works as any user with COREGUARD_CACHE set to a writable
# dir.
#
# The tests find it through COREGUARD_PROMTOOL, by default
# $CACHE/promtool/bin/promtool, a symlink this script points at the version
# it built.
#
# -tags remove_all_sd leaves out promtool's service-discovery plugins (the
# cloud and Kubernetes SDKs): checking rules, rule tests and metrics uses
# none of them. Cold on 2 idle cores (empty module and build caches): 3 min
# 42 s, 6.3 CPU-min, ~1 GB of module cache and ~0.85 GB of build cache; the
# full build takes about 2.3 times the CPU. Warm: nothing to do.
set -euo pipefail

# Prometheus 3.16.0: the module numbers v3.X.Y as v0.3XX.Y.
PROMETHEUS_MODULE_VERSION="v0.316.0"
CACHE="${COREGUARD_CACHE:-/var/cache/coreguard}"
DIR="${CACHE}/promtool-${PROMETHEUS_MODULE_VERSION}"

log() { echo "install-promtool: $*"; }
die() { echo "install-promtool: ERROR: $*" >&2; exit 1; }

command -v go >/dev/null || die "go not found in PATH"
mkdir -p "${CACHE}" || die "cannot create ${CACHE} (run as root or set COREGUARD_CACHE)"

if [ -x "${DIR}/bin/promtool" ]; then
	log "promtool ${PROMETHEUS_MODULE_VERSION} already built in ${DIR}/bin: skipping"
else
	log "building promtool ${PROMETHEUS_MODULE_VERSION} into ${DIR}/bin"
	mkdir -p "${DIR}/bin"
	start=$(date +%s)
	# Outside any module, so the project's go.mod neither changes nor matters.
	(cd / && GOBIN="${DIR}/bin.tmp" GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 go install -trimpath \
		-tags remove_all_sd "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_MODULE_VERSION}") ||
		die "go install of promtool ${PROMETHEUS_MODULE_VERSION} failed"
	mv -f "${DIR}/bin.tmp/promtool" "${DIR}/bin/promtool"
	rmdir "${DIR}/bin.tmp"
	log "built in $(($(date +%s) - start)) s"
fi

ln -sfn "promtool-${PROMETHEUS_MODULE_VERSION}" "${CACHE}/promtool" || die "symlink ${CACHE}/promtool"
log "${CACHE}/promtool -> promtool-${PROMETHEUS_MODULE_VERSION}"
