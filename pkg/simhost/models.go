package simhost

// Model returns the preset for a real device, with the IDs, drivers and VF
// routing layout its kernel shows.
func Model(name string) (PF, bool) {
	m, ok := models()[name]
	return m, ok
}

func models() map[string]PF {
	return map[string]PF{
		"e810": {Vendor: "8086", Device: "1592", Driver: "ice", TotalVFs: 256, VFOffset: 16, VFStride: 1,
			VFDevice: "1889", VFDriver: "iavf", DDPProfile: "ICE OS Default Package", EswitchMode: "legacy"},
		"x722": {Vendor: "8086", Device: "37d2", Driver: "i40e", TotalVFs: 64, VFOffset: 16, VFStride: 1,
			VFDevice: "37cd", VFDriver: "iavf"},
		"x710": {Vendor: "8086", Device: "1572", Driver: "i40e", TotalVFs: 64, VFOffset: 16, VFStride: 1,
			VFDevice: "154c", VFDriver: "iavf"},
		"cx6dx": {Vendor: "15b3", Device: "101d", Driver: "mlx5_core", TotalVFs: 16, VFOffset: 2, VFStride: 1,
			VFDevice: "101e", VFDriver: "mlx5_core", RDMA: true, VFRDMA: true, EswitchMode: "switchdev"},
		"bf2": {Vendor: "15b3", Device: "a2d6", Driver: "mlx5_core", RDMA: true, EswitchMode: "switchdev"},
		"cx4-ib": {Vendor: "15b3", Device: "1013", Class: "0x020700", Driver: "mlx5_core", LinkType: "infiniband",
			TotalVFs: 8, VFOffset: 2, VFStride: 1, VFDevice: "1014", VFDriver: "mlx5_core", RDMA: true, VFRDMA: true,
			EswitchMode: "legacy"},
		"igb": {Vendor: "8086", Device: "10c9", Driver: "igb", TotalVFs: 7, VFOffset: 128, VFStride: 2,
			VFDevice: "10ca", VFDriver: "igbvf"},
		"i210":  {Vendor: "8086", Device: "1533", Driver: "igb"},
		"n3000": {Vendor: "8086", Device: "0d90", Class: "0x120000", Driver: "dfl-pci"},
		// A paravirtual NIC: its netdev hangs off a virtio child device
		// (<function>/virtioN/net/<if>), not the PCI function.
		"virtio": {Vendor: "1af4", Device: "1041", Driver: "virtio-pci"},
	}
}

// profile is a ready-made host, one per case the driver must handle.
// Profiles use distinct PCI buses, so several can be combined into one host.
type profile struct {
	name string
	pfs  func() []PF
	// uppers are the profile's virtual interfaces, if any.
	uppers []Upper
}

// profiles lists the profiles in the order help texts and the demo show them.
func profiles() []profile {
	return []profile{
		{name: "e810", pfs: func() []PF {
			return []PF{{Address: "0000:3b:00.0", Model: "e810", IfName: "ens1f0", NUMANode: intp(0), NumVFs: 8,
				VFs: []VF{{Index: 6, Driver: "vfio-pci"}, {Index: 7, Driver: "vfio-pci"}}},
				{Address: "0000:3b:00.1", Model: "e810", IfName: "ens1f1", NUMANode: intp(0), NumVFs: 4, VFOffset: 135, VFStride: 1}}
		}},
		{name: "cx6dx", pfs: func() []PF {
			return []PF{{Address: "0000:5e:00.0", Model: "cx6dx", IfName: "ens2f0np0", NUMANode: intp(1), NumVFs: 4, Root: "pci0000:5d"}}
		}},
		{name: "bf2", pfs: func() []PF {
			return []PF{{Address: "0000:03:00.0", Model: "bf2", IfName: "p0", NUMANode: intp(0),
				SFs: []SF{{ID: 2, SFNum: 1, RDMA: true}, {ID: 3, SFNum: 2, RDMA: true}, {ID: 4, SFNum: 6, RDMA: true}}}}
		}},
		{name: "infiniband", pfs: func() []PF {
			return []PF{{Address: "0000:af:00.0", Model: "cx4-ib", IfName: "ib0", NUMANode: intp(1), NumVFs: 2, Root: "pci0000:ae",
				VFs: []VF{{Index: 0, PKeys: []string{"0x7fff", "0x8001"}}, {Index: 1, PKeys: []string{"0x7fff", "0x8002"}}}}}
		}},
		{name: "vdpa", pfs: func() []PF {
			return []PF{{Address: "0000:65:00.0", Model: "cx6dx", IfName: "ens3f0np0", NUMANode: intp(0), NumVFs: 2,
				VFs: []VF{{Index: 0, VDPA: "vhost"}, {Index: 1, VDPA: "virtio"}}}}
		}},
		{name: "fpga", pfs: func() []PF { return []PF{{Address: "0000:d8:00.0", Model: "n3000", NUMANode: intp(1)}} }},
		{name: "uio", pfs: func() []PF {
			return []PF{{Address: "0000:86:00.0", Model: "x710", IfName: "ens5f0", NUMANode: intp(1), NumVFs: 2, Root: "pci0000:85",
				VFs: []VF{{Index: 1, Driver: "igb_uio"}}}}
		}},
		// Three uplinks the driver must never offer: an I210 with the default
		// route, a virtio NIC with one (its netdev under virtioN/net/), and a
		// bond of two I210 ports with one.
		{name: "mgmt", pfs: func() []PF {
			return []PF{{Address: "0000:06:00.0", Model: "i210", IfName: "eno1", NUMANode: intp(0), DefaultRoute: true},
				{Address: "0000:07:00.0", Model: "virtio", IfName: "eth0", DefaultRoute: true},
				{Address: "0000:08:00.0", Model: "i210", IfName: "eno2", NUMANode: intp(0)},
				{Address: "0000:09:00.0", Model: "i210", IfName: "eno3", NUMANode: intp(0)}}
		}, uppers: []Upper{{Name: "bond0", Kind: "bond", Lowers: []string{"eno2", "eno3"}, DefaultRoute: true}}},
		{name: "igb", pfs: igbPFs},
		{name: "large", pfs: largePFs},
	}
}

// ProfileNames lists the built-in profiles.
func ProfileNames() []string {
	var out []string
	for _, p := range profiles() {
		out = append(out, p.name)
	}
	return out
}

// Profile returns a built-in profile's host.
func Profile(name string) (Spec, bool) {
	for _, p := range profiles() {
		if p.name == name {
			return Spec{PFs: p.pfs(), Uppers: p.uppers}, true
		}
	}
	return Spec{}, false
}

func intp(i int) *int { return &i }

// igbPFs mirrors the QEMU VM of the kernel test tier: two emulated 82576
// NICs on their own root ports, four VFs each.
func igbPFs() []PF {
	return []PF{
		{Address: "0000:01:00.0", Model: "igb", IfName: "enp1s0", NumVFs: 4, Root: "pci0000:00"},
		{Address: "0000:02:00.0", Model: "igb", IfName: "enp2s0", NumVFs: 4, Root: "pci0000:00"},
	}
}

// largePFs is 16 E810 ports with 128 VFs each (2,048 VFs), on buses 0xc0-0xcf.
func largePFs() []PF {
	pfs := make([]PF, 16)
	for i := range pfs {
		bus := 0xc0 + i
		pfs[i] = PF{
			Address:  pciAddr{bus: bus}.String(),
			Model:    "e810",
			IfName:   "ens" + itoa(10+i) + "f0",
			NUMANode: intp(i / 8),
			NumVFs:   128,
		}
	}
	return pfs
}
