package kubectlplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Output formats of -o.
const (
	OutputTable = "table"
	OutputWide  = "wide"
	OutputJSON  = "json"
)

// table writes rows of cells aligned in columns, as kubectl get does.
type table struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	t.row(header...)
	return t
}

// row writes cells, "-" for an empty one so that every column reads.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	t.raw(cells...)
}

func (t *table) raw(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

// flush writes the table without the padding tabwriter leaves at the end
// of lines whose last cells are blank.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(t.buf.String()) {
		if _, err := io.WriteString(t.out, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func checkOutput(output string) error {
	switch output {
	case OutputTable, OutputWide, OutputJSON:
		return nil
	}
	return fmt.Errorf("unknown output format %q: table, wide or json", output)
}

// WriteCapacity prints capacity rows.
func WriteCapacity(w io.Writer, output string, rows []CapacityRow) error {
	if output == OutputJSON {
		return writeJSON(w, rows)
	}
	header := []string{"NODE", "KIND", "NAME", "TOTAL", "ALLOCATED", "FREE", "TAINTED"}
	if output == OutputWide {
		header = append(header, "FREE BY NUMA")
	}
	t := newTable(w, header...)
	for _, r := range rows {
		cells := []string{r.Node, r.Kind, r.Name, itoa(r.Total), itoa(r.Allocated), itoa(r.Free), itoa(r.Tainted)}
		if output == OutputWide {
			cells = append(cells, byNUMA(r.FreeByNUMA))
		}
		t.row(cells...)
	}
	return t.flush()
}

func byNUMA(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// WriteNode prints a node's devices as a tree: each PF on a line of its
// own, its devices under it.
func WriteNode(w io.Writer, output, node string, groups []PFGroup) error {
	if output == OutputJSON {
		return writeJSON(w, map[string]any{"node": node, "pfs": groups})
	}
	header := []string{"PF / DEVICE", "FUNCTION", "PCI", "DRIVER", "NUMA", "HEALTH", "CLAIM", "POD"}
	if output == OutputWide {
		header = append(header, "IFNAME", "RESOURCE")
	}
	t := newTable(w, header...)
	blank := make([]string, len(header)-1)
	for _, g := range groups {
		// Blank cells, not none: a shorter line would end tabwriter's
		// column block and misalign the groups against each other.
		t.raw(append([]string{strings.TrimSpace(g.PF + " " + g.Root)}, blank...)...)
		for i, d := range g.Devices {
			branch := "├─ "
			if i == len(g.Devices)-1 {
				branch = "└─ "
			}
			var claims, pods []string
			for _, h := range d.Holders {
				claims = append(claims, h.Claim)
				pods = append(pods, h.Pods...)
			}
			cells := []string{branch + d.Name, d.Function, d.PCI, d.Driver, d.NUMA, d.Health(), strings.Join(claims, ","), strings.Join(pods, ",")}
			if output == OutputWide {
				cells = append(cells, d.IfName, d.Resource)
			}
			t.row(cells...)
		}
	}
	return t.flush()
}

// WriteWhy prints the verdicts, one line per claim, request and node.
func WriteWhy(w io.Writer, output string, rows []WhyRow) error {
	if output == OutputJSON {
		return writeJSON(w, rows)
	}
	header := []string{"CLAIM", "REQUEST", "NODE", "REASON", "DETAIL"}
	if output == OutputWide {
		header = []string{"CLAIM", "REQUEST", "NODE", "MATCH", "FREE", "NEEDS", "REASON", "DETAIL"}
	}
	t := newTable(w, header...)
	for _, r := range rows {
		if output == OutputWide {
			t.row(r.Claim, r.Request, r.Node, itoa(r.Matching), itoa(r.Free), itoa(r.Needed), string(r.Reason), r.Detail)
			continue
		}
		t.row(r.Claim, r.Request, r.Node, string(r.Reason), r.Detail)
	}
	return t.flush()
}

func itoa(i int) string { return strconv.Itoa(i) }
