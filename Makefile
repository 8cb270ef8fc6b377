# coreguard — build, test and demo targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Pinned so every machine lints alike; fetched from the Go module proxy.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Real-machine sysfs trees the topology tests read (skipped when absent,
# required under `make check`).
export COREGUARD_SYSFS_FIXTURES ?= $(abspath ../shared/fixtures/sysfs)

.PHONY: help build test unit lint fuzz bench e2e e2e-node deps-e2e deps-tools demo check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

build: ## build bin/coreguard (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/coreguard ./cmd/coreguard

test: unit lint ## unit tests with -race, vet and staticcheck

# Every package but the end-to-end ones, which need root and a runtime.
UNIT_PKGS = $$($(GO) list ./... | grep -v /test/)

unit: ## unit and conformance tests with the race detector
	$(GO) test -race -count=1 $(UNIT_PKGS)

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fuzz: ## run the CPU list parser fuzzer for 30s
	$(GO) test -run XXX -fuzz FuzzParse -fuzztime 30s ./cpuset/

bench: ## hot-path benchmarks: NRI round trip vs a no-op floor, start-up, memory, allocator (table + _output/bench.json)
	$(GO) run ./bench/report -out _output/bench.json

.PHONY: bench-smoke
bench-smoke: ## the bench harness in short form (few samples; checks it runs, asserts no timing)
	$(GO) run ./bench/report -short -out _output/bench-smoke.json

# Pinning on a dense node, on the real runtimes of `make e2e`: N shared
# containers (0, 50, 100, 200), pinned pods made through CRI, coreguard
# pre-installed in each sharedPoolUpdates mode against a no-op NRI plugin
# (bench/README.md, "Density"). Root; ~N min on the 2-core CI machine.
# Timings are reported, never asserted; the invariant is checked.
.PHONY: bench-density bench-density-smoke
bench-density: deps-e2e ## pinning with N shared containers on containerd and CRI-O (root): create time vs a no-op floor, exclusivity lag (table + _output/bench-density.json)
	@if [ "$$(id -u)" != 0 ]; then echo "make bench-density must run as root: it starts containerd and CRI-O. Try: sudo make bench-density" >&2; exit 1; fi
	$(GO) run ./bench/density -out _output/bench-density.json

bench-density-smoke: deps-e2e ## bench-density's small form for CI (N=20, few pinnings): checks the invariant, asserts no timing (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make bench-density-smoke must run as root: it starts containerd and CRI-O. Try: sudo make bench-density-smoke" >&2; exit 1; fi
	$(GO) run ./bench/density -smoke

deps-tools: ## build the tools the chart and rule tests run (helm and promtool, from the Go module proxy)
	bash hack/install-tools.sh

deps-e2e: ## install what end-to-end tests need (runc, conmon, skopeo from Debian; containerd and CRI-O from the Go module proxy)
	bash hack/install-e2e-deps.sh
	bash hack/install-crio-deps.sh

# The node tests (a whole Kubernetes node) run under e2e-node. Each scenario
# runs on containerd, then on CRI-O, as subtests; -p 1 keeps packages from
# overlapping too (each coreguard instance owns the CPUs it is given).
E2E_PKGS = $$($(GO) list ./test/... | grep -v /test/node)

e2e: deps-e2e ## end-to-end tests against real containerd and CRI-O (root)
	$(GO) test -race -count=1 -p 1 -timeout 30m -v $(E2E_PKGS)

# A private single-node cluster (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, built by hack/install-node-deps.sh at pinned
# versions) on the e2e containerd, coreguard deployed three ways; nothing may
# skip. Only containerd's deps (not CRI-O's). Cold: ~8-10 min of builds on 2
# idle cores; warm: ~1.7 min of tests.
e2e-node: image-tar ## coreguard under a real kubelet, checked with client-go (root)
	@if [ "$$(id -u)" != 0 ]; then echo "make e2e-node must run as root: it starts containerd and kubelet. Try: sudo make e2e-node" >&2; exit 1; fi
	bash hack/install-e2e-deps.sh
	bash hack/install-node-deps.sh
	bash hack/install-tools.sh
	COREGUARD_E2E_REQUIRED=1 COREGUARD_IMAGE_TAR=$(abspath $(IMAGE_TAR)) \
	  $(GO) test -count=1 -v -timeout 20m ./test/node/...

# Under check nothing may skip: missing fixtures or a missing runtime fail.
check: ## everything CI runs: set-up, unit tests, lint, end-to-end tests on containerd, CRI-O and a kubelet
	$(MAKE) deps-tools
	COREGUARD_REQUIRE_FIXTURES=1 COREGUARD_REQUIRE_CGROUP_V1=1 COREGUARD_REQUIRE_TOOLS=1 $(MAKE) test
	$(MAKE) bench-smoke
	COREGUARD_E2E_REQUIRED=1 $(MAKE) e2e
	$(MAKE) bench-density-smoke
	$(MAKE) e2e-node

demo: build ## the main job (root): private containerd + NRI + coreguard, a few pods, what each got
	@if [ "$$(id -u)" != 0 ]; then echo "make demo must run as root: it starts a private containerd and writes cgroups. Try: sudo make demo" >&2; exit 1; fi
	bash hack/install-e2e-deps.sh
	$(GO) run ./test/demo --coreguard $(BIN)/coreguard

clean: ## remove build output
	rm -rf $(BIN)

# --- deployment (deploy/, docs/install.md) -----------------------------------
# The image the manifests name (deploy/kubernetes/base/daemonset.yaml holds
# IMAGE:TAG; deploy_test.go checks they agree). Bump TAG there and here.
IMAGE ?= ghcr.io/coreguard/coreguard
TAG ?= v0.1.0
IMAGE_TAR ?= _output/coreguard-image.tar
# Pre-installed plugin: where containerd and CRI-O look by default.
NRI_PLUGIN_DIR ?= /opt/nri/plugins
NRI_CONF_DIR ?= /etc/nri/conf.d
NRI_INDEX ?= 10
BINDIR ?= /usr/local/bin

.PHONY: build-linux image-tar release install uninstall kind-test
# The helm hack/install-tools.sh builds (make deps-tools).
HELM ?= $${COREGUARD_CACHE:-/var/cache/coreguard}/helm-v4.3.2/bin/helm

# The image's platforms: the binary is pure Go, so each is a cross-build.
ARCHES ?= amd64 arm64

build-linux: ## static linux binaries for every ARCHES ($(BIN)/linux-ARCH/coreguard)
	@for arch in $(ARCHES); do \
	  echo "building $(BIN)/linux-$$arch/coreguard"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-$$arch/coreguard ./cmd/coreguard || exit 1; \
	done

image-tar: build-linux ## multi-platform OCI image tarball (ARCHES), no Docker ($(IMAGE_TAR), $(IMAGE):$(TAG))
	$(GO) run ./deploy/imagetar $(foreach a,$(ARCHES),--binary $(a)=$(BIN)/linux-$(a)/coreguard) \
	  --image $(IMAGE) --tag $(TAG) --version $(VERSION) -o $(IMAGE_TAR)

release: image-tar deps-tools ## _output/: binaries, the image tarball, the chart package and SHA256SUMS
	@mkdir -p _output
	@for arch in $(ARCHES); do cp $(BIN)/linux-$$arch/coreguard _output/coreguard-$(VERSION)-linux-$$arch; done
	$(HELM) package deploy/helm/coreguard --destination _output
	cd _output && sha256sum coreguard-$(VERSION)-linux-* $(notdir $(IMAGE_TAR)) coreguard-$(TAG:v%=%).tgz > SHA256SUMS
	@cat _output/SHA256SUMS

install: build ## pre-install coreguard into the runtime's NRI plugin dir (root; restart the runtime after)
	install -D -m 0755 $(BIN)/coreguard $(DESTDIR)$(NRI_PLUGIN_DIR)/$(NRI_INDEX)-coreguard
	@conf=$(DESTDIR)$(NRI_CONF_DIR)/$(NRI_INDEX)-coreguard.conf; \
	  if [ -e "$$conf" ]; then echo "keeping existing $$conf (new default: deploy/nri/10-coreguard.conf)"; \
	  else install -D -m 0644 deploy/nri/10-coreguard.conf "$$conf" && echo "installed $$conf"; fi
	install -d $(DESTDIR)$(BINDIR)
	ln -sf $(NRI_PLUGIN_DIR)/$(NRI_INDEX)-coreguard $(DESTDIR)$(BINDIR)/coreguard
	@echo "installed $(DESTDIR)$(NRI_PLUGIN_DIR)/$(NRI_INDEX)-coreguard; now restart the runtime" \
	  "(systemctl restart containerd, or crio) so it starts the plugin; logs: journalctl -t coreguard"

uninstall: ## remove the pre-installed plugin (its config stays unless PURGE=1; restart the runtime after)
	rm -f $(DESTDIR)$(NRI_PLUGIN_DIR)/$(NRI_INDEX)-coreguard
	@if [ -L $(DESTDIR)$(BINDIR)/coreguard ]; then rm -f $(DESTDIR)$(BINDIR)/coreguard; fi
	@if [ "$(PURGE)" = 1 ]; then rm -f $(DESTDIR)$(NRI_CONF_DIR)/$(NRI_INDEX)-coreguard.conf; \
	  else echo "kept $(DESTDIR)$(NRI_CONF_DIR)/$(NRI_INDEX)-coreguard.conf (PURGE=1 removes it)"; fi
	@echo "restart the runtime to stop the running plugin (a pre-installed plugin exits with its connection)"

kind-test: image-tar ## kind cluster with NRI, coreguard deployed, checked from real pods (needs docker + kind)
	IMAGE=$(IMAGE) TAG=$(TAG) IMAGE_TAR=$(IMAGE_TAR) bash test/kind/run.sh
