package simhost

import (
	"testing"

	"github.com/sriov-dra/sriov-dra/pkg/host"
)

// NewHost writes spec into a temp dir of the test and returns a Host over it
// and the directory, so a test can describe the PCI tree it needs in a few
// lines and run the real discovery on it.
func NewHost(tb testing.TB, spec Spec) (*host.Host, string) {
	tb.Helper()
	dir := tb.TempDir()
	if err := Write(dir, spec); err != nil {
		tb.Fatalf("write simulated host: %v", err)
	}
	return host.ForRoot(dir), dir
}

// NewProfileHost is NewHost for built-in profiles.
func NewProfileHost(tb testing.TB, profiles ...string) (*host.Host, string) {
	tb.Helper()
	spec, err := Combine(profiles...)
	if err != nil {
		tb.Fatal(err)
	}
	return NewHost(tb, spec)
}
