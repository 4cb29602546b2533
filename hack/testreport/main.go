// Command testreport reads `go test -json` on stdin and prints what a
// person needs from a unit test run: each package's result line, the whole
// output of every failed test, every skipped test with its reason (a skip
// is never silent), and a closing "N passed, N failed, N skipped" line. It
// exits non-zero when a test or a build failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	// Action is run, output, pass, fail, skip; build-output and build-fail
	// for a package that does not compile.
	Action  string
	Package string
	Test    string
	Output  string
}

type report struct {
	out                     io.Writer
	output                  map[string][]string // by package + test
	skips                   []string
	passed, failed, skipped int
	broken                  bool
}

func main() {
	r := &report{out: os.Stdout, output: map[string][]string{}}
	if err := r.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if r.print() {
		os.Exit(1)
	}
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (a build error printed as text): pass it on.
			fmt.Fprintln(r.out, sc.Text())
			r.broken = true
			continue
		}
		r.add(e)
	}
	return sc.Err()
}

func (r *report) add(e event) {
	key := e.Package + " " + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(r.out, e.Output)
	case e.Action == "build-fail":
		r.broken = true
	case e.Action == "output" && e.Test == "":
		// The package's own lines: "ok  pkg 1.2s", "FAIL pkg", build errors.
		if !strings.HasPrefix(e.Output, "PASS") && !strings.HasPrefix(e.Output, "=== ") {
			fmt.Fprint(r.out, e.Output)
		}
	case e.Action == "output":
		r.output[key] = append(r.output[key], e.Output)
	case e.Test == "":
		if e.Action == "fail" {
			r.broken = true
		}
	case e.Action == "pass":
		r.passed++
		delete(r.output, key)
	case e.Action == "fail":
		r.failed++
		for _, l := range r.output[key] {
			fmt.Fprint(r.out, l)
		}
		delete(r.output, key)
	case e.Action == "skip":
		r.skipped++
		r.skips = append(r.skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, skipReason(r.output[key])))
		delete(r.output, key)
	}
}

// skipReason is the message a test gave t.Skip, from its output.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		msg = append(msg, l)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}

// print writes the skips and the closing line; it reports a failure.
func (r *report) print() bool {
	if len(r.skips) > 0 {
		sort.Strings(r.skips)
		fmt.Fprintf(r.out, "skipped tests (%d):\n", len(r.skips))
		for _, s := range r.skips {
			fmt.Fprintf(r.out, "  %s\n", s)
		}
	}
	fmt.Fprintf(r.out, "%d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skipped)
	return r.failed > 0 || r.broken
}
