//go:build tools

// Package tools pins the helm CLI that `make helm` and the e2e chart test use.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
