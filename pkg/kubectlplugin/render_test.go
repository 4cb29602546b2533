package kubectlplugin

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	resourceapi "k8s.io/api/resource/v1"
)

// lines joins table lines; the tables are compared whole, column alignment
// included, since being readable at a glance is what they are for.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

func TestRender(t *testing.T) {
	m := NewModel(snapshot(pending("c", resourceapi.ExactDeviceRequest{DeviceClassName: "ens1f1", Count: 1})))
	capRows, _, err := m.Capacity(t.Context(), CapacityOptions{Node: "n1"})
	require.NoError(t, err)
	groups, err := m.Node("n1")
	require.NoError(t, err)
	whyRows := m.Why(t.Context(), podWith("c", "a"))

	tests := []struct {
		name   string
		output string
		write  func(*bytes.Buffer, string) error
		want   string
	}{{
		name: "capacity", output: OutputTable,
		write: func(b *bytes.Buffer, o string) error { return WriteCapacity(b, o, capRows) },
		want: lines(
			"NODE  KIND          NAME               TOTAL  ALLOCATED  FREE  TAINTED",
			"n1    driver        sriov.dra.dev      6      2          2     2",
			"n1    class         ens1f0             4      2          2     0",
			"n1    class         ens1f1             2      0          0     2",
			"n1    class         vf                 6      2          2     2",
			"n1    resourceName  intel.com/sriov_a  2      2          0     0"),
	}, {
		name: "capacity wide: free devices per NUMA node", output: OutputWide,
		write: func(b *bytes.Buffer, o string) error { return WriteCapacity(b, o, capRows[:3]) },
		want: lines(
			"NODE  KIND    NAME           TOTAL  ALLOCATED  FREE  TAINTED  FREE BY NUMA",
			"n1    driver  sriov.dra.dev  6      2          2     2        0:2",
			"n1    class   ens1f0         4      2          2     0        0:2",
			"n1    class   ens1f1         2      0          0     2        -"),
	}, {
		name: "node: each PF, its VFs under it, health and holders", output: OutputTable,
		write: func(b *bytes.Buffer, o string) error { return WriteNode(b, o, "n1", groups) },
		want: lines(
			"PF / DEVICE          FUNCTION  PCI           DRIVER  NUMA  HEALTH                       CLAIM  POD",
			"ens1f0 0000:3b:00.0",
			"├─ pci-0000-3b-02-0  vf 0      0000:3b:02.0  iavf    0     healthy                      ns/a   ns/pod-a",
			"├─ pci-0000-3b-02-1  vf 1      0000:3b:02.1  iavf    0     healthy                      ns/b   ns/pod-b",
			"├─ pci-0000-3b-02-2  vf 2      0000:3b:02.2  iavf    0     healthy                      -      -",
			"└─ pci-0000-3b-02-3  vf 3      0000:3b:02.3  iavf    0     healthy                      -      -",
			"ens1f1 0000:3c:00.0",
			"├─ pci-0000-3c-02-0  vf 0      0000:3c:02.0  iavf    1     link-down=ens1f1:NoSchedule  -      -",
			"└─ pci-0000-3c-02-1  vf 1      0000:3c:02.1  iavf    1     link-down=ens1f1:NoSchedule  -      -"),
	}, {
		name: "node wide: interface and classic resource name", output: OutputWide,
		write: func(b *bytes.Buffer, o string) error {
			return WriteNode(b, o, "n1", []PFGroup{{PF: groups[0].PF, Root: groups[0].Root, Devices: groups[0].Devices[:1]}})
		},
		want: lines(
			"PF / DEVICE          FUNCTION  PCI           DRIVER  NUMA  HEALTH   CLAIM  POD       IFNAME  RESOURCE",
			"ens1f0 0000:3b:00.0",
			"└─ pci-0000-3b-02-0  vf 0      0000:3b:02.0  iavf    0     healthy  ns/a   ns/pod-a  -       intel.com/sriov_a"),
	}, {
		name: "why", output: OutputTable,
		write: func(b *bytes.Buffer, o string) error { return WriteWhy(b, o, whyRows) },
		want: lines(
			"CLAIM  REQUEST  NODE  REASON              DETAIL",
			"ns/c   dev      n1    tainted             2 match, 0 free, needs 1; 2 tainted link-down=ens1f1:NoSchedule",
			`ns/c   dev      n2    no device matches   class ens1f1 selector 2 (device.attributes["sriov.dra.dev"].pfName == "ens1f1"): none of 3`,
			"ns/a   dev      n1    nothing in the way  allocated pci-0000-3b-02-0"),
	}, {
		name: "why wide: the counts", output: OutputWide,
		write: func(b *bytes.Buffer, o string) error { return WriteWhy(b, o, whyRows[:1]) },
		want: lines(
			"CLAIM  REQUEST  NODE  MATCH  FREE  NEEDS  REASON   DETAIL",
			"ns/c   dev      n1    2      0     1      tainted  2 match, 0 free, needs 1; 2 tainted link-down=ens1f1:NoSchedule"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, tt.write(&b, tt.output))
			assert.Equal(t, tt.want, b.String())
		})
	}
}

// -o json is the same data, for scripts: it decodes back to what was written.
func TestRenderJSON(t *testing.T) {
	m := NewModel(snapshot())
	rows, _, err := m.Capacity(t.Context(), CapacityOptions{})
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, WriteCapacity(&b, OutputJSON, rows))
	var back []CapacityRow
	require.NoError(t, json.Unmarshal(b.Bytes(), &back))
	assert.Equal(t, rows, back)

	groups, err := m.Node("n1")
	require.NoError(t, err)
	b.Reset()
	require.NoError(t, WriteNode(&b, OutputJSON, "n1", groups))
	var node struct {
		Node string    `json:"node"`
		PFs  []PFGroup `json:"pfs"`
	}
	require.NoError(t, json.Unmarshal(b.Bytes(), &node))
	assert.Equal(t, "n1", node.Node)
	assert.Equal(t, groups, node.PFs)
}

func TestCheckOutput(t *testing.T) {
	for _, o := range []string{OutputTable, OutputWide, OutputJSON} {
		assert.NoError(t, checkOutput(o))
	}
	assert.EqualError(t, checkOutput("yaml"), `unknown output format "yaml": table, wide or json`)
}

func TestNodeUnknown(t *testing.T) {
	_, err := NewModel(snapshot()).Node("n9")
	assert.EqualError(t, err, "node n9: no ResourceSlices of driver sriov.dra.dev (nodes with some: n1, n2)")
}
