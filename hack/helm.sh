#!/usr/bin/env bash
# The chart is the one source of the deployment objects:
#   hack/helm.sh check    lint the chart, render it with several value sets,
#                         and fail if deployments/manifests/sriov-dra.yaml is
#                         not what the chart renders with its defaults.
#   hack/helm.sh render   rewrite deployments/manifests/sriov-dra.yaml.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
helm=${HELM:-$root/_output/bin/helm}
chart=$root/deployments/helm/sriov-dra
manifests=$root/deployments/manifests/sriov-dra.yaml

render() {
	cat <<'HEADER'
# sriov-dra: the node daemon as a DaemonSet, with the RBAC it needs.
# Rendered from the Helm chart (deployments/helm/sriov-dra) with its default
# values by `make manifests`; change the chart, not this file.
apiVersion: v1
kind: Namespace
metadata:
  name: sriov-dra
HEADER
	"$helm" template sriov-dra "$chart" --namespace sriov-dra
}

case ${1:-check} in
render)
	render > "$manifests.tmp"
	mv "$manifests.tmp" "$manifests"
	echo "wrote $manifests"
	;;
check)
	"$helm" lint --strict "$chart"
	# Each value set renders (a template error or a schema violation fails).
	sets=(
		""
		"--set-json legacyResources=[\"all\"] --set legacyCDI=true"
		"--set-file classicConfig.json=$root/deployments/examples/classic-config.json"
		"--set classicConfig.existingConfigMap=sriovdp-config --set-json legacyResources=[\"intel.com/intel_sriov_netdevice\"]"
		"--set classicConfig.content=null --set metrics.enabled=false --set ownNodePolicy.enabled=false --set-json deviceClasses=[]"
		"--set nri.enabled=true --set nri.socketDir=/run/containerd/nri"
		"--set driverName=sriov.example.com --set logging.format=json --set logging.verbosity=4 --set-json tolerations=[{\"operator\":\"Exists\"}]"
		"--set prometheusRule.enabled=true --set prometheusRule.labels.release=kube-prometheus-stack --set grafanaDashboard.enabled=true --set grafanaDashboard.annotations.grafana_folder=SR-IOV"
	)
	for s in "${sets[@]}"; do
		# shellcheck disable=SC2086
		"$helm" template sriov-dra "$chart" --namespace sriov-dra $s > /dev/null || { echo "helm template failed with: $s" >&2; exit 1; }
		echo "rendered: ${s:-(defaults)}"
	done
	# Enabled, the PrometheusRule carries every alert of files/alerts.yaml and
	# the dashboard ConfigMap the sidecar's label.
	monitoring=$("$helm" template sriov-dra "$chart" --namespace sriov-dra --set prometheusRule.enabled=true --set grafanaDashboard.enabled=true)
	alerts=$(grep -c '^ *- alert: ' "$chart/files/alerts.yaml")
	if ! grep -q '^kind: PrometheusRule$' <<<"$monitoring" || [ "$(grep -c '^ *- alert: ' <<<"$monitoring")" != "$alerts" ] ||
		! grep -q '^    grafana_dashboard: "1"$' <<<"$monitoring" || ! grep -q '^  sriov-dra.json: |$' <<<"$monitoring"; then
		echo "prometheusRule.enabled and grafanaDashboard.enabled do not render the $alerts alerts and the dashboard" >&2
		exit 1
	fi
	echo "the PrometheusRule renders the $alerts alerts, the dashboard ConfigMap its label"
	if ! diff -u "$manifests" <(render); then
		echo "$manifests is not what the chart renders: run make manifests" >&2
		exit 1
	fi
	echo "the plain manifests are the chart's defaults"
	;;
*)
	echo "usage: $0 check|render" >&2
	exit 2
	;;
esac
