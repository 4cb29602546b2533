#!/usr/bin/env bash
# make demo-helm: the install path for real. The node image from `make image`
# imported into a single-node cluster's containerd, the Helm chart installed
# with the built helm, the DaemonSet's pod Ready, a pod with a vfio-pci VF
# claim on a DeviceClass from the chart's values, then `helm uninstall`.
# KEEP=1 leaves it all running.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/_output/bin
cluster_dir=${CLUSTER_DIR:-/tmp/sriov-dra-demo-cluster}
host_dir=${HOST_DIR:-/dev/shm/sriov-dra-demo-host}
archive=$root/_output/demo-image.tar
image=sriov-dra.local/sriov-dra:demo
. "$root/hack/lib.sh"

trap demo_exit EXIT

"$root/hack/install-deps.sh"
say "building (pinned Kubernetes, etcd, containerd, helm: slow only the first time) and the node image"
# Only the tools the demo runs (make tools also builds the linters and
# Prometheus).
"$root/hack/build-k8s.sh" kubernetes etcd containerd helm pause >/dev/null
make -C "$root" --no-print-directory build "$bin/e2e-cluster" >/dev/null
make -C "$root" --no-print-directory image IMAGE="$image" IMAGE_PLATFORMS="$(go env GOARCH)" IMAGE_ARCHIVE="$archive"

say "starting a single-node cluster"
start_cluster "$cluster_dir" "$root/_output/demo-cluster.log"
export KUBECONFIG=$cluster_dir/kubeconfig
kubectl() { "$bin/kubectl" "$@"; }
helm() { echo "+ helm $*" >&2; HELM_CACHE_HOME=$cluster_dir/helm HELM_CONFIG_HOME=$cluster_dir/helm HELM_DATA_HOME=$cluster_dir/helm "$bin/helm" "$@"; }

say "importing the image into the node's containerd"
"$bin/ctr" --address "$cluster_dir/containerd/containerd.sock" -n k8s.io images import --local "$archive"

say "simulating a host: E810, ConnectX-6 Dx, BlueField-2 SFs, InfiniBand, vDPA, FPGA, uio, management NIC"
rm -rf "$host_dir"
"$bin/sriov-dra" simulate --profile e810,cx6dx,bf2,infiniband,vdpa,fpga,uio,mgmt --char-devices --out "$host_dir" >/dev/null

say "helm install (chart values: deployments/examples/demo/helm-values.yaml; the harness's paths and apiserver on the command line)"
# No kube-proxy on this cluster: the pod reaches the apiserver on loopback.
port=$(sed -n 's#.*server: https://127.0.0.1:\([0-9]*\).*#\1#p' "$KUBECONFIG")
helm install sriov-dra "$root/deployments/helm/sriov-dra" --namespace sriov-dra --create-namespace --wait --timeout 2m \
	--values "$root/deployments/examples/demo/helm-values.yaml" \
	--set-file classicConfig.json="$root/deployments/examples/classic-config.json" \
	--set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
	--set hostPaths.kubeletDir="$cluster_dir/kubelet" --set hostPaths.cdiDir="$cluster_dir/cdi" \
	--set hostPaths.deviceInfoDir="$cluster_dir/devinfo" \
	--set-json "extraArgs=[\"--simulated\",\"--sysfs-root=$host_dir/sys\"]" \
	--set-json "extraEnv=[{\"name\":\"KUBERNETES_SERVICE_HOST\",\"value\":\"127.0.0.1\"},{\"name\":\"KUBERNETES_SERVICE_PORT\",\"value\":\"$port\"}]" \
	--set-json "extraVolumes=[{\"name\":\"simhost\",\"hostPath\":{\"path\":\"$host_dir\"}}]" \
	--set-json "extraVolumeMounts=[{\"name\":\"simhost\",\"mountPath\":\"$host_dir\"}]"
kubectl -n sriov-dra get pods -o wide
show_slices

say "a pod with a vfio-pci VF claim on the chart's sriov-dpdk DeviceClass"
kubectl apply -f "$root/deployments/examples/demo/dpdk-pod.yaml"
kubectl wait --for=condition=Ready pod/dpdk-app --timeout=120s || { kubectl describe pod dpdk-app; kubectl -n sriov-dra logs ds/sriov-dra --tail 20; exit 1; }
sleep 1
for f in "$cluster_dir"/pod-logs/default_dpdk-app_*/app/*.log; do
	cut -d' ' -f4- "$f"
done
[ "${KEEP:-0}" = 1 ] && exit 0

say "helm uninstall"
kubectl delete -f "$root/deployments/examples/demo/dpdk-pod.yaml" --wait
helm uninstall sriov-dra --namespace sriov-dra --cascade foreground --wait
echo "left in namespace sriov-dra: $(kubectl -n sriov-dra get all -o name | wc -l) objects"
echo "(the node's ResourceSlices go 30 s after the driver did: the kubelet removes them)"
