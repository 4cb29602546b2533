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
BENCHTIME ?= 20x
DEMO_DIR ?= $(OUTPUT)/demo

.PHONY: all build test bench lint fuzz demo demo-host clean tools e2e e2e-kernel cluster-up cluster-down

all: lint test build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/sriov-dra ./cmd/sriov-dra

test:
	TMPDIR=$(TEST_TMPDIR) $(GO) test -count=1 $(PKGS)

bench:
	TMPDIR=$(TEST_TMPDIR) $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) $(PKGS) | tee $(OUTPUT)/bench.txt
	@./hack/bench-summary.sh $(OUTPUT)/bench.txt

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz:
	TMPDIR=$(TEST_TMPDIR) $(GO) test ./pkg/pfrange/ -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	TMPDIR=$(TEST_TMPDIR) $(GO) test ./api/classic/v1/ -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)

# demo-host: the driver's discovery and classic pools on a simulated host,
# no cluster needed.
demo-host: build
	rm -rf $(DEMO_DIR)
	$(BIN)/sriov-dra simulate --profile e810,cx6dx,bf2,infiniband,vdpa,fpga,uio,mgmt --out $(DEMO_DIR)
	$(BIN)/sriov-dra discover --sysfs-root $(DEMO_DIR)/sys
	$(BIN)/sriov-dra pools --sysfs-root $(DEMO_DIR)/sys --config deployments/examples/classic-config.json

demo: demo-host

tools:
	./hack/build-k8s.sh

clean:
	rm -rf $(OUTPUT)
