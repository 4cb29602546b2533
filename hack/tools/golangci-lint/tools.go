//go:build tools

// Package tools pins golangci-lint, which `make lint` builds into
// _output/bin (hack/build-k8s.sh golangci_lint).
package tools

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
