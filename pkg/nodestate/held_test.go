package nodestate

import (
	"fmt"
	"testing"

	"github.com/sriov-dra/sriov-dra/pkg/checkpoint"
)

// BenchmarkHeld is what each rescan now adds: reading which devices the
// prepared claims hold from a checkpoint of 256 claims, one VF each.
func BenchmarkHeld(b *testing.B) {
	s := New(Config{PluginDir: b.TempDir(), BootID: "boot"})
	d := checkpoint.Data{BootID: "boot", Claims: map[string]checkpoint.Claim{}}
	pool := "intel.com/intel_sriov_netdevice"
	for i := range 256 {
		uid := fmt.Sprintf("claim-%03d", i)
		d.Claims[uid] = checkpoint.Claim{Namespace: "ns", Name: uid, State: checkpoint.StatePrepared,
			CDISpec: "/var/run/cdi/sriov.dra.dev-net_" + uid + ".json", InfoFiles: []string{"/var/run/devinfo/" + uid + "-device.json"},
			Devices: []checkpoint.Device{{Request: "vf", Pool: "node", Name: fmt.Sprintf("pci-0000-3b-%02x-%d", 2+i/8, i%8),
				PCIAddress: fmt.Sprintf("0000:3b:%02x.%d", 2+i/8, i%8), CDIDeviceIDs: []string{"sriov.dra.dev/net=" + uid}, ClassicPool: &pool}}}
	}
	if err := s.Save(d); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cp, err := s.Peek()
		if held := Held(cp); err != nil || len(held) != 256 {
			b.Fatalf("held: %d, %v", len(held), err)
		}
	}
}
