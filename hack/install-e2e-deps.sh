#!/usr/bin/env bash
# Installs what the coreguard e2e tests need: runc, the CNI plugins and
# dbus-daemon (Debian)
# and containerd built from source with Go into a cache dir. Idempotent; run as
# root.
# The containerd version lives here and only here. The Go harness finds the
# binaries through COREGUARD_CONTAINERD_BIN, by default $CACHE/containerd/bin,
# a symlink this script points at the version it built.
set -euo pipefail

CONTAINERD_VERSION="v2.4.2"
CACHE="${COREGUARD_CACHE:-/var/cache/coreguard}"
BIN="${CACHE}/containerd-${CONTAINERD_VERSION}/bin"

log() { echo "install-e2e-deps: $*"; }
die() { echo "install-e2e-deps: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs runc, the CNI plugins and dbus-daemon with apt-get)"

# apt_install PKG: installs a Debian package, refreshing the package lists
# only when the first try fails (a fresh machine has none).
apt_install() {
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1"; then
		apt-get update || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" || die "apt-get install $1 failed"
	fi
}
command -v go >/dev/null || die "go not found in PATH"

if command -v runc >/dev/null; then
	log "runc present: $(command -v runc) ($(runc --version | head -1))"
else
	log "runc missing: installing with apt-get"
	apt-get update || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y runc || die "apt-get install runc failed"
	command -v runc >/dev/null || die "runc still missing after apt-get install"
	log "installed $(runc --version | head -1)"
fi

# Pods get their own network namespace through CNI (the harness writes a
# loopback-only conflist, loopback + static, into its private conf dir and runs
# the plugins from here; see test/e2e/README.md, "Traps handled").
CNI_BIN="/usr/lib/cni"
if [ -x "${CNI_BIN}/loopback" ] && [ -x "${CNI_BIN}/static" ]; then
	log "CNI plugins present in ${CNI_BIN}"
else
	log "CNI plugins missing: installing containernetworking-plugins with apt-get"
	apt_install containernetworking-plugins
	for p in loopback static; do
		[ -x "${CNI_BIN}/${p}" ] || die "${CNI_BIN}/${p} missing after installing containernetworking-plugins"
	done
	log "installed containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins)"
fi

# TestEnableNRI and TestNodeDaemonSetEnablesNRI run a private dbus-daemon
# (systemd's manager is played on it: test/e2e/systemdbus).
if command -v dbus-daemon >/dev/null; then
	log "dbus-daemon present: $(command -v dbus-daemon)"
else
	log "dbus-daemon missing: installing with apt-get"
	apt_install dbus-daemon
	command -v dbus-daemon >/dev/null || die "dbus-daemon missing after apt-get install"
fi

have_all=1
for b in containerd containerd-shim-runc-v2 ctr; do
	[ -x "${BIN}/${b}" ] || have_all=0
done
if [ "${have_all}" -eq 1 ]; then
	log "containerd ${CONTAINERD_VERSION} already built in ${BIN}: skipping"
else
	log "building containerd ${CONTAINERD_VERSION} into ${BIN} (about 1.5 min on 2 cores, cold cache)"
	mkdir -p "${BIN}"
	pkg="github.com/containerd/containerd/v2/cmd"
	# Outside any module so the project's go.mod does not influence the build.
	(cd / && GOBIN="${BIN}" GOFLAGS=-mod=mod go install \
		"${pkg}/containerd@${CONTAINERD_VERSION}" \
		"${pkg}/containerd-shim-runc-v2@${CONTAINERD_VERSION}" \
		"${pkg}/ctr@${CONTAINERD_VERSION}") || die "go install of containerd ${CONTAINERD_VERSION} failed"
	for b in containerd containerd-shim-runc-v2 ctr; do
		[ -x "${BIN}/${b}" ] || die "${BIN}/${b} missing after build"
	done
	log "built: $("${BIN}/containerd" --version)"
fi

ln -sfn "containerd-${CONTAINERD_VERSION}" "${CACHE}/containerd" || die "symlink ${CACHE}/containerd"
log "${CACHE}/containerd -> containerd-${CONTAINERD_VERSION}"

log "done. Run the e2e tests (as root) with: go test -count=1 -v ./test/e2e/..."
