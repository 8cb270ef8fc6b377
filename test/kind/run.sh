#!/usr/bin/env bash
# coreguard in a real Kubernetes node: create a kind cluster whose containerd
# has NRI on (deploy/kind/cluster.yaml), load the image `make image-tar`
# built, deploy deploy/kubernetes/base, then check from real pods:
#   1. an odd Guaranteed `cpu: 3` pod runs, on whole cores only;
#   2. a privileged pod in `default` is refused, with coreguard's message in
#      its events;
#   3. a privileged pod in `kube-system` runs.
# Usage: make kind-test   (or IMAGE=... TAG=... IMAGE_TAR=... bash test/kind/run.sh)
# Needs: docker (a running engine), kind, kubectl. KEEP_CLUSTER=1 keeps the
# cluster afterwards; CLUSTER names it (default coreguard-test).
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-ghcr.io/coreguard/coreguard}
TAG=${TAG:-v0.1.0}
IMAGE_TAR=${IMAGE_TAR:-_output/coreguard-image.tar}
CLUSTER=${CLUSTER:-coreguard-test}
KUBECTL=(kubectl --context "kind-$CLUSTER")
# Test pods use busybox (pulled from Docker Hub by the node).
BUSYBOX=${BUSYBOX:-busybox:1.36}

die() { echo "kind-test: $*" >&2; exit 1; }
step() { echo "== $*"; }

# --- prerequisites: stop with a clear message where something is missing ---
command -v docker >/dev/null || die "docker not found: kind runs its nodes as Docker containers (install Docker, then retry)"
docker info >/dev/null 2>&1 || die "docker is installed but no engine answers ('docker info' fails): start the Docker daemon (or point DOCKER_HOST at one)"
command -v kind >/dev/null || die "kind not found: go install sigs.k8s.io/kind@v0.33.0 (and put \$(go env GOPATH)/bin in PATH)"
command -v kubectl >/dev/null || die "kubectl not found: https://kubernetes.io/docs/tasks/tools/"
[ -f "$IMAGE_TAR" ] || die "$IMAGE_TAR missing: run make image-tar (make kind-test does)"

cleanup() {
  local rc=$?
  if [ "$rc" != 0 ]; then
    echo "== failed; coreguard's log:" >&2
    "${KUBECTL[@]}" -n kube-system logs -l app.kubernetes.io/name=coreguard --tail=50 >&2 || true
  fi
  if [ "${KEEP_CLUSTER:-}" = 1 ]; then
    echo "kept cluster $CLUSTER (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$rc"
}

step "creating kind cluster $CLUSTER with NRI enabled"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  die "cluster $CLUSTER exists already: kind delete cluster --name $CLUSTER, or set CLUSTER"
fi
trap cleanup EXIT
kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 120s
NODE=$("${KUBECTL[@]}" get nodes -o jsonpath='{.items[0].metadata.name}')
docker exec "$NODE" test -S /var/run/nri/nri.sock || die "no NRI socket in node $NODE: containerd did not enable NRI"

# cpu: 3 rounds up to whole cores; coreguard keeps at least one core shared,
# so the node needs more than that. Threads per core from the node's sysfs.
CPUS=$(docker exec "$NODE" nproc)
TPC=$(docker exec "$NODE" sh -c 'cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list' | awk -F'[,-]' '{print NF}')
NEED=$(( ( (3 + TPC - 1) / TPC ) * TPC + TPC ))
[ "$CPUS" -ge "$NEED" ] || die "node has $CPUS CPUs ($TPC threads per core): a cpu: 3 pod takes $(( NEED - TPC )) and one core must stay shared; need $NEED CPUs"

step "loading $IMAGE:$TAG from $IMAGE_TAR"
kind load image-archive "$IMAGE_TAR" --name "$CLUSTER"
docker exec "$NODE" crictl inspecti "$IMAGE:$TAG" >/dev/null || die "image $IMAGE:$TAG not in the node after kind load"

step "deploying coreguard (deploy/kubernetes/base)"
"${KUBECTL[@]}" apply -k deploy/kubernetes/base
"${KUBECTL[@]}" -n kube-system set image daemonset/coreguard "coreguard=$IMAGE:$TAG" >/dev/null
"${KUBECTL[@]}" -n kube-system rollout status daemonset/coreguard --timeout=120s
# Registered with the runtime: its log says so.
for _ in $(seq 60); do
  if "${KUBECTL[@]}" -n kube-system logs daemonset/coreguard 2>/dev/null | grep -q "registered with the runtime"; then break; fi
  sleep 1
done
"${KUBECTL[@]}" -n kube-system logs daemonset/coreguard | grep -q "registered with the runtime" ||
  die "coreguard never registered with the runtime"
"${KUBECTL[@]}" -n kube-system exec daemonset/coreguard -- /coreguard topology --sysfs-root /host/sys

# expand "0-2,8" into "0 1 2 8"
expand() {
  local part out=()
  IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then
      local lo=${part%-*} hi=${part#*-} i
      for ((i = lo; i <= hi; i++)); do out+=("$i"); done
    else
      out+=("$part")
    fi
  done
  echo "${out[@]}"
}

step "1. odd Guaranteed cpu: 3 pod runs on whole cores"
"${KUBECTL[@]}" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: odd-cpu, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: $BUSYBOX
      command: [sh, -c, 'grep Cpus_allowed_list /proc/self/status; sleep 3600']
      resources:
        requests: {cpu: "3", memory: 64Mi}
        limits: {cpu: "3", memory: 64Mi}
YAML
"${KUBECTL[@]}" wait --for=condition=Ready pod/odd-cpu --timeout=180s
ALLOWED=$("${KUBECTL[@]}" exec odd-cpu -- sh -c "grep Cpus_allowed_list /proc/1/status" | awk '{print $2}')
echo "odd-cpu runs on CPUs $ALLOWED"
read -ra CPUS_GOT <<<"$(expand "$ALLOWED")"
[ "${#CPUS_GOT[@]}" -ge 3 ] || die "cpu: 3 pod got ${#CPUS_GOT[@]} CPUs ($ALLOWED)"
[ "${#CPUS_GOT[@]}" -lt "$CPUS" ] || die "cpu: 3 pod was not pinned: it may run on every CPU ($ALLOWED)"
for cpu in "${CPUS_GOT[@]}"; do
  siblings=$(docker exec "$NODE" cat "/sys/devices/system/cpu/cpu$cpu/topology/thread_siblings_list")
  for s in $(expand "$siblings"); do
    [[ " ${CPUS_GOT[*]} " == *" $s "* ]] || die "CPU $cpu's core ($siblings) is split: $s is not in $ALLOWED"
  done
done
echo "ok: whole cores only ($TPC threads per core)"

privileged_pod() { # name namespace
  "${KUBECTL[@]}" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $2}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: $BUSYBOX
      command: [sleep, "3600"]
      securityContext: {privileged: true}
YAML
}

step "2. privileged pod in default is refused"
privileged_pod priv default
MSG=""
for _ in $(seq 90); do
  MSG=$("${KUBECTL[@]}" -n default get events --field-selector involvedObject.name=priv -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' | grep "coreguard: privileged container" || true)
  [ -n "$MSG" ] && break
  sleep 1
done
[ -n "$MSG" ] || die "no coreguard refusal in pod priv's events: $("${KUBECTL[@]}" -n default describe pod priv | tail -20)"
echo "event: $(head -1 <<<"$MSG")"
PHASE=$("${KUBECTL[@]}" -n default get pod priv -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}')
[ "$PHASE" = CreateContainerError ] || die "pod priv: waiting reason $PHASE, want CreateContainerError"

step "3. privileged pod in kube-system runs"
privileged_pod priv kube-system
"${KUBECTL[@]}" -n kube-system wait --for=condition=Ready pod/priv --timeout=180s
"${KUBECTL[@]}" -n kube-system delete pod priv --wait=false >/dev/null

echo "kind-test: all checks passed"
