package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReport(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:3: noise\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: needs root to create network namespaces\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:1: want 2, got 3\n"}
{"Action":"fail","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}
{"Action":"fail","Package":"p"}
{"Action":"output","Package":"q","Output":"ok  \tq\t0.2s\n"}
{"Action":"pass","Package":"q"}
`
	var out bytes.Buffer
	r := &report{out: &out, output: map[string][]string{}}
	require.NoError(t, r.read(strings.NewReader(in)))
	assert.True(t, r.print(), "a failed test fails the run")
	assert.Equal(t, "    c_test.go:1: want 2, got 3\nFAIL\tp\t0.1s\nok  \tq\t0.2s\n"+
		"skipped tests (1):\n  p TestB: b_test.go:9: needs root to create network namespaces\n"+
		"1 passed, 1 failed, 1 skipped\n", out.String())
}

func TestReportPasses(t *testing.T) {
	var out bytes.Buffer
	r := &report{out: &out, output: map[string][]string{}}
	require.NoError(t, r.read(strings.NewReader(`{"Action":"pass","Package":"p","Test":"TestA"}`+"\n")))
	assert.False(t, r.print())
	assert.Equal(t, "1 passed, 0 failed, 0 skipped\n", out.String())
}
