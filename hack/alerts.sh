#!/usr/bin/env bash
# The alerting rules (deployments/helm/sriov-dra/files/alerts.yaml) checked
# and unit-tested with the pinned promtool (`make lint` runs this): every
# alert has cases firing and not firing in alerts_test.yaml.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
promtool=${PROMTOOL:-$root/_output/bin/promtool}
files=$root/deployments/helm/sriov-dra/files

"$promtool" check rules "$files/alerts.yaml"
"$promtool" test rules "$files/alerts_test.yaml"
# Each alert of the rules has a case that expects it to fire and one that
# expects it not to.
missing=0
for alert in $(sed -n 's/^ *- alert: *//p' "$files/alerts.yaml"); do
	cases=$(grep -A1 -E "alertname: $alert(\$|,)" "$files/alerts_test.yaml" || true)
	if ! grep -q 'exp_alerts:$' <<<"$cases"; then
		echo "alerts_test.yaml: no case where $alert fires" >&2
		missing=1
	fi
	if ! grep -q 'exp_alerts: \[\]' <<<"$cases"; then
		echo "alerts_test.yaml: no case where $alert does not fire" >&2
		missing=1
	fi
done
[ $missing = 0 ] && echo "every alert has cases firing and not firing"
exit $missing
