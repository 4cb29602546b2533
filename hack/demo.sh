#!/usr/bin/env bash
# make demo: a real single-node Kubernetes on this machine (etcd, apiserver,
# scheduler, controller-manager, kubelet, containerd + runc), sriov-dra on a
# simulated host with every kind of device, the example DeviceClasses, and a
# pod that gets a vfio-pci VF. Prints the pod's PCIDEVICE_* environment and the
# claim's allocation, then tears everything down (KEEP=1 keeps it running).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/_output/bin
cluster_dir=${CLUSTER_DIR:-/tmp/sriov-dra-demo-cluster}
host_dir=${HOST_DIR:-/dev/shm/sriov-dra-demo-host}
log=$root/_output/demo-driver.log
. "$root/hack/lib.sh"

stop_extra() { [ -n "${driver_pid:-}" ] && kill "$driver_pid" 2>/dev/null && wait "$driver_pid" 2>/dev/null || true; }
trap demo_exit EXIT

"$root/hack/install-deps.sh"
say "building (pinned Kubernetes v1.37.2, etcd, containerd: slow only the first time)"
# Only the tools the demo runs (make tools also builds the linters and
# Prometheus).
"$root/hack/build-k8s.sh" kubernetes etcd containerd pause >/dev/null
make -C "$root" --no-print-directory build "$bin/e2e-cluster" >/dev/null

say "starting a single-node cluster"
start_cluster "$cluster_dir" "$root/_output/demo-cluster.log"
export KUBECONFIG=$cluster_dir/kubeconfig
kubectl() { "$bin/kubectl" "$@"; }

say "simulating a host: E810, ConnectX-6 Dx, BlueField-2 SFs, InfiniBand, vDPA, FPGA, uio, management NIC"
rm -rf "$host_dir"
# Device nodes must be real char devices for the runtime: --char-devices (root).
"$bin/sriov-dra" simulate --profile e810,cx6dx,bf2,infiniband,vdpa,fpga,uio,mgmt --char-devices --out "$host_dir" >/dev/null
"$bin/sriov-dra" discover --simulated --sysfs-root "$host_dir/sys"

say "starting sriov-dra run (classic config: deployments/examples/classic-config.json)"
"$bin/sriov-dra" run --node-name e2e-node --kubeconfig "$KUBECONFIG" --simulated --sysfs-root "$host_dir/sys" \
	--cdi-root "$cluster_dir/cdi" --plugin-dir "$cluster_dir/kubelet/plugins/sriov.dra.dev" \
	--registrar-dir "$cluster_dir/kubelet/plugins_registry" --device-info-dir "$cluster_dir/devinfo" \
	--config "$root/deployments/examples/classic-config.json" --rescan-interval 10s >"$log" 2>&1 &
driver_pid=$!
show_slices

say "applying the example DeviceClasses and a pod with a vfio-pci VF claim"
kubectl apply -f "$root/deployments/examples/deviceclasses/" -f "$root/deployments/examples/demo/dpdk-class.yaml"
kubectl apply -f "$root/deployments/examples/demo/dpdk-pod.yaml"
kubectl wait --for=condition=Ready pod/dpdk-app --timeout=120s || { kubectl describe pod dpdk-app; tail -20 "$log"; exit 1; }

say "the pod's environment and devices"
sleep 1
for f in "$cluster_dir"/pod-logs/default_dpdk-app_*/app/*.log; do
	cut -d' ' -f4- "$f"
done
say "the claim's allocation"
kubectl get resourceclaims -o jsonpath='{range .items[*]}{.metadata.name}{": "}{.status.allocation.devices.results}{"\n"}{end}'
