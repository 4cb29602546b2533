package simhost

// ClassicExample is a host built for the classic plugin README's example
// config (api/classic/v1/testdata/classic-readme-example.json): a device for
// every pool, and near misses for each selector. It shares PCI buses with
// the profiles, so it is not one of them (they combine).
func ClassicExample() Spec {
	return Spec{PFs: []PF{
		// enp0s0f0: two iavf VFs (intel_sriov_netdevice) and two vfio-pci VFs (intel_sriov_dpdk).
		{Address: "0000:3b:00.0", Model: "e810", IfName: "enp0s0f0", NumVFs: 4,
			VFs: []VF{{Index: 2, Driver: "vfio-pci"}, {Index: 3, Driver: "vfio-pci"}}},
		// enp2s2f1: X710 VFs (154c), one on vfio-pci (intel_sriov_dpdk), one on iavf.
		{Address: "0000:5b:00.0", Model: "x710", IfName: "enp2s2f1", NumVFs: 2,
			VFs: []VF{{Index: 0, Driver: "vfio-pci"}}},
		// ens9f0: a vfio-pci VF on a PF outside the dpdk pool's pfNames.
		{Address: "0000:5c:00.0", Model: "e810", IfName: "ens9f0", NumVFs: 1,
			VFs: []VF{{Index: 0, Driver: "vfio-pci"}}},
		// ConnectX-5 VFs (1018) on mlx5_ib with RDMA (mlnx_sriov_rdma).
		{Address: "0000:5d:00.0", Vendor: "15b3", Device: "1017", Driver: "mlx5_core", IfName: "ens4f0",
			TotalVFs: 8, NumVFs: 2, VFOffset: 2, VFDevice: "1018", VFDriver: "mlx5_ib", VFRDMA: true},
		// InfiniBand VFs (infiniband_rdma_netdevs).
		{Address: "0000:af:00.0", Model: "cx4-ib", IfName: "ib0", NumVFs: 2,
			VFs: []VF{{Index: 0, PKeys: []string{"0x7fff", "0x8001"}}, {Index: 1, PKeys: []string{"0x7fff", "0x8002"}}}},
		// ConnectX-6 Dx VFs: one vhost vDPA (ct6dx_vdpa_vhost), one virtio vDPA (no pool).
		{Address: "0000:65:00.0", Model: "cx6dx", IfName: "ens3f0np0", NumVFs: 2,
			VFs: []VF{{Index: 0, VDPA: "vhost"}, {Index: 1, VDPA: "virtio"}}},
		// Intel FPGA (intel_fpga).
		{Address: "0000:d8:00.0", Model: "n3000"},
		// BlueField-2 SFs with sfnum 1, 2, 6: p0#1-5 takes the first two.
		{Address: "0000:03:00.0", Model: "bf2", IfName: "p0",
			SFs: []SF{{ID: 2, SFNum: 1}, {ID: 3, SFNum: 2}, {ID: 4, SFNum: 6}}},
	}}
}
