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

.PHONY: help build test unit lint fuzz bench e2e deps-e2e demo check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

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

bench: ## allocator benchmarks against the first-fit baseline
	$(GO) test -run XXX -bench . -benchmem ./cpuset/alloc/

deps-e2e: ## install what end-to-end tests need (runc from Debian, containerd from the Go module proxy)
	bash hack/install-e2e-deps.sh

e2e: deps-e2e ## end-to-end tests against a real containerd (root)
	$(GO) test -race -count=1 -v ./test/...

# Under check nothing may skip: missing fixtures or a missing runtime fail.
check: ## everything CI runs: set-up, unit tests, lint, end-to-end tests
	COREGUARD_REQUIRE_FIXTURES=1 COREGUARD_REQUIRE_CGROUP_V1=1 $(MAKE) test
	COREGUARD_E2E_REQUIRED=1 $(MAKE) e2e

demo: build ## the main job (root): private containerd + NRI + coreguard, a few pods, what each got
	@if [ "$$(id -u)" != 0 ]; then echo "make demo must run as root: it starts a private containerd and writes cgroups. Try: sudo make demo" >&2; exit 1; fi
	bash hack/install-e2e-deps.sh
	$(GO) run ./test/demo --coreguard $(BIN)/coreguard

clean: ## remove build output
	rm -rf $(BIN)
