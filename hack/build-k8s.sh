#!/usr/bin/env bash
# Builds the pinned Kubernetes components, etcd, containerd, helm,
# golangci-lint and prometheus/promtool that lint, the chart check and the
# integration/e2e harness run, into _output/bin. Each binary is rebuilt only
# when it is missing (Go's build cache makes a forced rebuild cheap anyway).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${OUTPUT_BIN:-$root/_output/bin}
mkdir -p "$bin"

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
CONTAINERD_VERSION=v2.4.2
HELM_VERSION=v4.3.2

log() { printf '[build-k8s] %s\n' "$*" >&2; }

# missing PREFIX NAME...: PREFIX/NAME for each NAME not yet in $bin.
missing() {
	local prefix=$1 c
	shift
	for c in "$@"; do
		[ -x "$bin/$c" ] || echo "$prefix/$c"
	done
}

build_kubernetes() {
	local ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean"
	done
	local want
	mapfile -t want < <(missing k8s.io/kubernetes/cmd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
	[ ${#want[@]} -gt 0 ] || return 0
	log "building ${want[*]} ($K8S_VERSION)"
	(cd "$root/hack/tools/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" "${want[@]}")
}

build_etcd() {
	[ -x "$bin/etcd" ] && return 0
	log "building etcd $ETCD_VERSION"
	(cd "$root/hack/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_containerd() {
	local want
	mapfile -t want < <(missing github.com/containerd/containerd/v2/cmd containerd containerd-shim-runc-v2 ctr)
	[ ${#want[@]} -gt 0 ] || return 0
	log "building ${want[*]} ($CONTAINERD_VERSION)"
	(cd "$root/hack/tools/containerd" && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
		-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" -o "$bin/" "${want[@]}")
}

# `make helm` lints and renders the chart with it; the e2e chart test installs
# with it.
build_helm() {
	[ -x "$bin/helm" ] && return 0
	log "building helm $HELM_VERSION"
	(cd "$root/hack/tools/helm" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" -o "$bin/helm" helm.sh/helm/v4/cmd/helm)
}

# `make lint` runs it with .golangci.yml.
GOLANGCI_LINT_VERSION=v2.15.0
build_golangci_lint() {
	[ -x "$bin/golangci-lint" ] && return 0
	log "building golangci-lint $GOLANGCI_LINT_VERSION"
	(cd "$root/hack/tools/golangci-lint" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X main.version=${GOLANGCI_LINT_VERSION#v}" -o "$bin/golangci-lint" github.com/golangci/golangci-lint/v2/cmd/golangci-lint)
}

# prometheus and promtool: `make lint` checks and unit-tests the alerting
# rules (deployments/prometheus) with promtool; the e2e alert test runs the
# server against the daemon. Only the static, file and HTTP service discovery
# (remove_all_sd): the cloud SDKs would more than double the build. No
# built-in web UI assets (the tests use the HTTP API only).
PROMETHEUS_VERSION=v3.16.0 # module github.com/prometheus/prometheus v0.316.0
build_prometheus() {
	local want
	mapfile -t want < <(missing github.com/prometheus/prometheus/cmd prometheus promtool)
	[ ${#want[@]} -gt 0 ] || return 0
	log "building ${want[*]} ($PROMETHEUS_VERSION)"
	(cd "$root/hack/tools/prometheus" && CGO_ENABLED=0 go build -trimpath -tags "netgo remove_all_sd" \
		-ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION#v}" -o "$bin/" "${want[@]}")
}

# The e2e cluster's sandbox image runs this (see e2e/images/pause).
build_pause() {
	[ -x "$bin/pause" ] && return 0
	log "building pause"
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/pause" ./e2e/images/pause)
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kubernetes etcd containerd helm golangci_lint prometheus pause)
for t in "${targets[@]}"; do "build_$t"; done
log "done: $(ls "$bin" | tr '\n' ' ')"
