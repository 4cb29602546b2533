// Package simhosttest writes simulated hosts into a test's temp dir, so that
// a test describes the PCI tree it needs in a few lines and runs the real
// code on it. It lives apart from simhost so that the shipped binary does not
// link package testing.
package simhosttest

import (
	"testing"

	"github.com/sriov-dra/sriov-dra/pkg/simhost"
)

// NewHost writes spec into a temp dir of the test and returns the simulated
// host over it and the directory.
func NewHost(tb testing.TB, spec simhost.Spec) (*simhost.Host, string) {
	tb.Helper()
	dir := tb.TempDir()
	if err := simhost.Write(dir, spec); err != nil {
		tb.Fatalf("write simulated host: %v", err)
	}
	h, err := simhost.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return h, dir
}

// NewProfileHost is NewHost for built-in profiles.
func NewProfileHost(tb testing.TB, profiles ...string) (*simhost.Host, string) {
	tb.Helper()
	return NewHost(tb, Profiles(tb, profiles...))
}

// Profiles combines built-in profiles into one spec.
func Profiles(tb testing.TB, names ...string) simhost.Spec {
	tb.Helper()
	spec, err := simhost.Combine(names...)
	if err != nil {
		tb.Fatal(err)
	}
	return spec
}
