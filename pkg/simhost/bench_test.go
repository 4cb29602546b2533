package simhost

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkLinkPoll is what a simulated host costs at rest: one poll of the
// large profile's 16 PFs' links, with a tenth of the PF list refresh that
// WatchEvents does every ten polls. cpu-%-at-1Hz is its CPU time as a share
// of one core at the poll rate of one a second.
func BenchmarkLinkPoll(b *testing.B) {
	dir := b.TempDir()
	spec, _ := Combine("large")
	if err := Write(dir, spec); err != nil {
		b.Fatal(err)
	}
	h, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	netdevs := h.pfNetdevs()
	if len(netdevs) != 16 {
		b.Fatalf("%d PF netdevs", len(netdevs))
	}
	last := map[string]string{}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	n := 0
	for b.Loop() {
		if n%10 == 0 {
			netdevs = h.pfNetdevs()
		}
		h.pollLinks(netdevs, last, func(string) {})
		n++
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(n)
	b.ReportMetric(float64(cpu.Microseconds()), "cpu-us/poll")
	b.ReportMetric(float64(cpu)/float64(time.Second)*100, "cpu-%-at-1Hz")
}
