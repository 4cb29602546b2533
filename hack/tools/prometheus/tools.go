//go:build tools

// Package tools pins the prometheus server and promtool: `make lint` checks
// and unit-tests the alerting rules with promtool, and the e2e alert test runs
// a real Prometheus against the daemon.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
