# sriov-dra — see README.md for what each target proves.
SHELL := /bin/bash
GO ?= go
OUTPUT := $(CURDIR)/_output
BIN := $(OUTPUT)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Simulated hosts are tens of thousands of small files: a tmpfs makes the
# unit tests several times faster than a VM disk does.
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo /tmp)
PKGS := ./...
FUZZTIME ?= 2m
BENCHTIME ?= 1s
DEMO_DIR ?= $(OUTPUT)/demo

.PHONY: release previous-release bench-scale demo-helm helm manifests image all build test bench bench-e2e lint fuzz demo demo-host clean tools e2e e2e-kernel cluster-up cluster-down

all: lint test build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/sriov-dra ./cmd/sriov-dra
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kubectl-sriov_dra ./cmd/kubectl-sriov_dra

# test: the unit tests; hack/testreport prints each package's result, the
# output of failed tests, every skipped test with its reason, and a count.
test:
	@mkdir -p $(OUTPUT); set -o pipefail; TMPDIR=$(TEST_TMPDIR) $(GO) test -count=1 -json $(PKGS) | tee $(OUTPUT)/unit-tests.json | $(GO) run ./hack/testreport

bench:
	TMPDIR=$(TEST_TMPDIR) $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) $(PKGS) | tee $(OUTPUT)/bench.txt
	@./hack/bench-summary.sh $(OUTPUT)/bench.txt

# lint: golangci-lint (pinned, built by make tools; its checks and why are in
# .golangci.yml) over every package and both test tiers' build tags; then the
# alerting rules checked and unit-tested with promtool (hack/alerts.sh).
lint: $(BIN)/golangci-lint $(BIN)/promtool
	$(BIN)/golangci-lint run ./...
	./hack/alerts.sh

$(BIN)/golangci-lint:
	./hack/build-k8s.sh golangci_lint

$(BIN)/promtool:
	./hack/build-k8s.sh prometheus

fuzz:
	TMPDIR=$(TEST_TMPDIR) $(GO) test ./pkg/pfrange/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	TMPDIR=$(TEST_TMPDIR) $(GO) test ./api/classic/v1/ -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

# demo-host: the driver's discovery and classic pools on a simulated host,
# no cluster needed.
demo-host: build
	rm -rf $(DEMO_DIR)
	$(BIN)/sriov-dra simulate --profile e810,cx6dx,bf2,infiniband,vdpa,fpga,uio,mgmt --out $(DEMO_DIR)
	$(BIN)/sriov-dra discover --simulated --sysfs-root $(DEMO_DIR)/sys
	$(BIN)/sriov-dra pools --simulated --sysfs-root $(DEMO_DIR)/sys --config deployments/examples/classic-config.json

# demo: the README's first command: a real cluster, the driver on a
# simulated host, a pod with a VF; KEEP=1 leaves it running.
demo:
	./hack/demo.sh

# demo-helm: the same through the install path: the node image, the Helm
# chart, the DaemonSet on the kubelet, then helm uninstall.
demo-helm:
	./hack/demo-helm.sh

# image: the node image as an OCI archive (linux/amd64 and linux/arm64 in one
# index), from the static binaries; no builder or registry needed.
# `ctr -n k8s.io images import $(IMAGE_ARCHIVE)` or `docker load -i` it.
IMAGE ?= ghcr.io/sriov-dra/sriov-dra:$(VERSION)
IMAGE_ARCHIVE ?= $(OUTPUT)/sriov-dra-image.tar
IMAGE_PLATFORMS ?= amd64 arm64
image:
	@set -e; bins=(); for arch in $(IMAGE_PLATFORMS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(OUTPUT)/image/$$arch/sriov-dra ./cmd/sriov-dra; \
		bins+=(--binary linux/$$arch=$(OUTPUT)/image/$$arch/sriov-dra); done; \
	$(GO) run ./hack/image --name $(IMAGE) --out $(IMAGE_ARCHIVE) "$${bins[@]}"

# release: the kubectl plugin as release binaries with their SHA-256 sums,
# in _output/release. Linux only: the plugin reads attribute names through
# pkg/discovery, which links pkg/host's netlink code. It is not in the node
# image: it would grow it from 20.8 to 34.5 MB compressed on every node for a
# tool run from an operator's machine.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
release:
	@set -e; rm -rf $(OUTPUT)/release; mkdir -p $(OUTPUT)/release; for p in $(RELEASE_PLATFORMS); do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags "-s -w" \
			-o $(OUTPUT)/release/kubectl-sriov_dra-$${p%/*}-$${p#*/} ./cmd/kubectl-sriov_dra; done; \
	cd $(OUTPUT)/release && sha256sum kubectl-sriov_dra-* > SHA256SUMS && cat SHA256SUMS

tools:
	./hack/build-k8s.sh

$(BIN)/helm:
	./hack/build-k8s.sh helm

# helm: lint the chart, render it with several value sets, and check that
# the plain manifests are what it renders with its defaults.
helm: $(BIN)/helm
	./hack/helm.sh check

# manifests: rewrite deployments/manifests/sriov-dra.yaml from the chart.
manifests: $(BIN)/helm
	./hack/helm.sh render

CLUSTER_DIR ?= /tmp/sriov-dra-cluster
E2E_FLAGS ?=

$(BIN)/e2e-cluster: $(shell find e2e -name '*.go')
	$(GO) build -o $@ ./e2e/cmd/e2e-cluster

# e2e: the e2e/ tests against real etcd, kube-apiserver, controller-manager,
# scheduler, containerd + runc and kubelet. Whatever the outcome, a cleanup
# pass runs and checks that nothing was left running, mounted or configured.
# The DaemonSet tests install the node image, built for this machine only.
E2E_IMAGE_ARCHIVE := $(OUTPUT)/e2e-image.tar
# The upgrade test rolls the DaemonSet from this release's image and
# manifests to the tree's: the last landed main before the checkpoint got
# record types of its own.
PREVIOUS_RELEASE ?= ce83a6e
PREVIOUS_DIR := $(OUTPUT)/previous-$(PREVIOUS_RELEASE)
e2e: tools build $(BIN)/e2e-cluster previous-release
	@$(MAKE) --no-print-directory image IMAGE_PLATFORMS=$$($(GO) env GOARCH) IMAGE_ARCHIVE=$(E2E_IMAGE_ARCHIVE)
	@start=$$(date +%s); \
	(cd e2e && TMPDIR=/tmp $(GO) test -tags e2e -count=1 -timeout 40m -v ./ -bin-dir $(BIN) -logs-dir $(OUTPUT)/e2e-artifacts -image-archive $(E2E_IMAGE_ARCHIVE) \
		-previous-dir $(PREVIOUS_DIR) $(E2E_FLAGS)); rc=$$?; \
	TMPDIR=/tmp $(BIN)/e2e-cluster clean -dir "" || rc=1; \
	echo "make e2e: $$(( $$(date +%s) - start ))s, exit $$rc"; exit $$rc

# previous-release: the node image and manifests of PREVIOUS_RELEASE, built
# from its tree (git archive; a clone without that commit skips the upgrade
# test, saying so).
previous-release:
	@if [ -f $(PREVIOUS_DIR)/image.tar ]; then exit 0; fi; \
	if ! git cat-file -e $(PREVIOUS_RELEASE)^{commit} 2>/dev/null; then echo "previous release $(PREVIOUS_RELEASE) not in this clone: the upgrade test will be skipped"; exit 0; fi; \
	rm -rf $(PREVIOUS_DIR) && mkdir -p $(PREVIOUS_DIR)/src && \
	git archive $(PREVIOUS_RELEASE) -- . ':!sriov-dra' | tar -x -C $(PREVIOUS_DIR)/src && \
	cp $(PREVIOUS_DIR)/src/deployments/manifests/sriov-dra.yaml $(PREVIOUS_DIR)/manifests.yaml && \
	$(MAKE) --no-print-directory -C $(PREVIOUS_DIR)/src image VERSION=$(PREVIOUS_RELEASE) IMAGE_PLATFORMS=$$($(GO) env GOARCH) IMAGE_ARCHIVE=$(PREVIOUS_DIR)/image.tar

# bench-e2e: time from `sriov-dra run` start to all 2,048 VFs visible in the
# apiserver (median of 5 starts) and the daemon's memory then; pod start with
# and without a VF claim.
bench-e2e: tools build $(BIN)/e2e-cluster
	@(cd e2e && TMPDIR=/tmp $(GO) test -tags e2e -count=1 -timeout 20m -run '^$$' -bench . -benchtime 5x ./ -bin-dir $(BIN)); rc=$$?; \
	TMPDIR=/tmp $(BIN)/e2e-cluster clean -dir "" || rc=1; exit $$rc

# bench-scale: NODES nodes of 2,048 simulated VFs published at once to one
# real control plane; apiserver and etcd memory, etcd bytes per device,
# scheduling and claim churn (figures in docs/scale.md). Not part of CI.
NODES ?= 100
CLAIMS ?= 1000
bench-scale: tools $(BIN)/e2e-cluster
	@(cd e2e/scale && TMPDIR=/tmp $(GO) test -tags e2e -count=1 -timeout 60m -v -run TestScale ./ -bin-dir $(BIN) -nodes $(NODES) -claims $(CLAIMS) | tee $(OUTPUT)/bench-scale.txt); rc=$${PIPESTATUS[0]}; \
	TMPDIR=/tmp $(BIN)/e2e-cluster clean -dir "" || rc=1; exit $$rc

# e2e-kernel: real igb VFs in a QEMU VM; ARGS are passed to the test binary.
e2e-kernel:
	./hack/e2e-kernel.sh $(ARGS)

cluster-up: tools build $(BIN)/e2e-cluster
	@nohup $(BIN)/e2e-cluster up -dir $(CLUSTER_DIR) -bin-dir $(BIN) > $(OUTPUT)/cluster-up.log 2>&1 &
	@for i in $$(seq 1 600); do \
		if grep -q "cluster ready" $(OUTPUT)/cluster-up.log 2>/dev/null; then grep "cluster ready" $(OUTPUT)/cluster-up.log; exit 0; fi; \
		if ! pgrep -f "e2e-cluster up -dir $(CLUSTER_DIR)" >/dev/null; then cat $(OUTPUT)/cluster-up.log; exit 1; fi; \
		sleep 0.2; done; echo "cluster did not come up"; exit 1

cluster-down: $(BIN)/e2e-cluster
	$(BIN)/e2e-cluster down -dir $(CLUSTER_DIR)

clean:
	rm -rf $(OUTPUT)
