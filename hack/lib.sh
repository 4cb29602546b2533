# Shared by the demo scripts: source it after setting root and bin.
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# start_cluster DIR LOG: a single-node cluster of the pinned components in
# DIR (any earlier one there stopped first), its output in LOG.
start_cluster() {
	local dir=$1 log=$2
	"$bin/e2e-cluster" down -dir "$dir" >/dev/null 2>&1 || true
	nohup "$bin/e2e-cluster" up -dir "$dir" -bin-dir "$bin" >"$log" 2>&1 &
	local pid=$!
	for _ in $(seq 1 600); do
		grep -q "cluster ready" "$log" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || { cat "$log"; return 1; }
		sleep 0.2
	done
	grep "cluster ready" "$log"
}

# demo_exit is the demos' EXIT trap: with KEEP=1 everything stays up;
# otherwise the demo's own stop_extra (if it defines one) runs, then the
# cluster in $cluster_dir stops and the simulated host in $host_dir goes.
demo_exit() {
	[ "${KEEP:-0}" = 1 ] && { say "kept running: export KUBECONFIG=$cluster_dir/kubeconfig; stop with: CLUSTER_DIR=$cluster_dir make cluster-down"; return; }
	say "tearing down"
	if declare -F stop_extra >/dev/null; then stop_extra; fi
	"$bin/e2e-cluster" down -dir "$cluster_dir" || true
	rm -rf "$host_dir"
}

# show_slices waits (up to 20 s) for the first ResourceSlice and lists them.
show_slices() {
	for _ in $(seq 1 100); do
		[ "$(kubectl get resourceslices -o name 2>/dev/null | wc -l)" -gt 0 ] && break
		sleep 0.2
	done
	kubectl get resourceslices -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,DEVICES:.spec.devices[*].name
}
