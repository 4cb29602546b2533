// Package pfrange parses the classic "<PF>#<i>,<a>-<b>" selector syntax
// used by pfNames and rootDevices.
package pfrange

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Range is an inclusive range of VF indexes (or SF numbers).
type Range struct{ First, Last int }

// Selector is a parsed pfNames/rootDevices entry.
type Selector struct {
	// PF is the interface name or PCI address before '#'.
	PF string
	// Ranges is empty when the entry names the whole PF.
	Ranges []Range
}

// Parse reads "ens1f0", "ens1f0#3" or "0000:86:00.0#0-1,3,4".
func Parse(s string) (Selector, error) {
	pf, spec, hasRange := strings.Cut(s, "#")
	if pf == "" {
		return Selector{}, errors.New("missing PF before '#'")
	}
	sel := Selector{PF: pf}
	if !hasRange {
		return sel, nil
	}
	if spec == "" {
		return Selector{}, errors.New("empty index list after '#'")
	}
	for _, part := range strings.Split(spec, ",") {
		first, last, isRange := strings.Cut(part, "-")
		a, err := index(first)
		if err != nil {
			return Selector{}, err
		}
		b := a
		if isRange {
			if b, err = index(last); err != nil {
				return Selector{}, err
			}
			if a > b {
				return Selector{}, fmt.Errorf("range %q starts after it ends", part)
			}
		}
		sel.Ranges = append(sel.Ranges, Range{First: a, Last: b})
	}
	return sel, nil
}

func index(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty index")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, fmt.Errorf("index %q is not a non-negative number", s)
	}
	return n, nil
}

// Contains reports whether index i is selected. A selector without ranges
// selects every index, including a PF's own (-1).
func (s Selector) Contains(i int) bool {
	if len(s.Ranges) == 0 {
		return true
	}
	for _, r := range s.Ranges {
		if i >= r.First && i <= r.Last {
			return true
		}
	}
	return false
}
