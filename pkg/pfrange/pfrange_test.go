package pfrange_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sriov-dra/sriov-dra/pkg/pfrange"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		pf      string
		in_     []int
		out     []int
		wantErr string
	}{
		{in: "ens1f0", pf: "ens1f0", in_: []int{-1, 0, 99}},
		{in: "netpf0#0,2-7,9", pf: "netpf0", in_: []int{0, 2, 5, 7, 9}, out: []int{-1, 1, 8, 10}},
		{in: "0000:86:00.0#0-1,3,4", pf: "0000:86:00.0", in_: []int{0, 1, 3, 4}, out: []int{2, 5}},
		{in: "p0#1-5", pf: "p0", in_: []int{1, 5}, out: []int{0, 6}},
		{in: "p0#3-3", pf: "p0", in_: []int{3}, out: []int{2, 4}},
		{in: "p0#5-2", wantErr: `range "5-2" starts after it ends`},
		{in: "p0#a", wantErr: `index "a" is not a non-negative number`},
		{in: "p0#", wantErr: "empty index list"},
		{in: "#1", wantErr: "missing PF"},
		{in: "", wantErr: "missing PF"},
		{in: "p0#1,", wantErr: "empty index"},
		{in: "p0#-3", wantErr: "empty index"},
		{in: "p0#1-", wantErr: "empty index"},
		{in: "p0#+1", wantErr: "not a non-negative number"},
		{in: "p0#1-2-3", wantErr: `index "2-3"`},
		{in: "p0#99999999999999999999", wantErr: "not a non-negative number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			sel, err := pfrange.Parse(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.pf, sel.PF)
			for _, i := range tc.in_ {
				assert.Truef(t, sel.Contains(i), "%d selected", i)
			}
			for _, i := range tc.out {
				assert.Falsef(t, sel.Contains(i), "%d not selected", i)
			}
		})
	}
}

// FuzzParse checks that parsing never panics and that what parses is
// self-consistent: a PF name, ordered ranges, and indexes inside them selected.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ens1f0", "netpf0#0,2-7,9", "p0#5-2", "p0#", "#", "a#1-2,3", "0000:86:00.0#0-1,3,4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := pfrange.Parse(s)
		if err != nil {
			return
		}
		if sel.PF == "" || strings.Contains(sel.PF, "#") {
			t.Fatalf("%q: bad PF %q", s, sel.PF)
		}
		for _, r := range sel.Ranges {
			if r.First < 0 || r.First > r.Last || !sel.Contains(r.First) || !sel.Contains(r.Last) {
				t.Fatalf("%q: bad range %+v", s, r)
			}
		}
	})
}
