#!/usr/bin/env bash
# Builds the tools the chart and rule tests run for real, from the Go module
# proxy only, at pinned versions, into a cache dir: helm (helm template and
# lint of deploy/helm/coreguard), promtool (install-promtool.sh: the alerts
# and the dashboard of deploy/), and the shells whose completion scripts
# cmd/coreguard tests for real (zsh and fish, from Debian, as root).
# Idempotent: a tool already there is skipped.
set -euo pipefail

HELM_VERSION="v4.3.2"
CACHE="${COREGUARD_CACHE:-/var/cache/coreguard}"
HELM_DIR="${CACHE}/helm-${HELM_VERSION}"

log() { echo "install-tools: $*"; }
die() { echo "install-tools: ERROR: $*" >&2; exit 1; }

command -v go >/dev/null || die "go not found in PATH"
mkdir -p "${CACHE}" || die "cannot create ${CACHE} (run as root or set COREGUARD_CACHE)"
# Outside any project module.
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

if [ -x "${HELM_DIR}/bin/helm" ] && "${HELM_DIR}/bin/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
	log "helm ${HELM_VERSION} already built in ${HELM_DIR}/bin: skipping"
else
	log "building helm ${HELM_VERSION} into ${HELM_DIR}/bin"
	mkdir -p "${HELM_DIR}/bin"
	# helm prints its version from these variables; go install sets none.
	GOBIN="${HELM_DIR}/bin" go install -trimpath \
		-ldflags "-X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
		"helm.sh/helm/v4/cmd/helm@${HELM_VERSION}" || die "build of helm ${HELM_VERSION} failed"
	log "built: $("${HELM_DIR}/bin/helm" version --short)"
fi

for sh in zsh fish; do
	if command -v "${sh}" >/dev/null; then
		log "${sh} already installed: skipping"
	elif [ "$(id -u)" -ne 0 ]; then
		log "${sh} missing and not root: its completion tests skip"
	else
		log "${sh} missing: installing with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${sh}" >/dev/null ||
			{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${sh}" >/dev/null; } ||
			die "apt-get install ${sh} failed"
	fi
done

# promtool, for the alert and dashboard tests (its own script: its build
# needs a word of explanation).
bash "$(dirname "$0")/install-promtool.sh"
