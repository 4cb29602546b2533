#!/usr/bin/env bash
# Prints the figures the issues ask for from a `go test -bench` output file:
# per-benchmark time/op and allocs/op, and the growth ratio of discovery
# from 512 to 2,048 VFs (linear growth is 4).
set -euo pipefail
f=${1:?bench output file}
echo
echo "== summary =="
awk '/^Benchmark/ { printf "%-48s %14s ns/op %12s allocs/op\n", $1, $3, $(NF-1) }' "$f"
awk '/^BenchmarkDiscover\/vfs=512-/ {a=$3} /^BenchmarkDiscover\/vfs=2048-/ {b=$3}
     END { if (a && b) printf "discovery growth 512 -> 2048 VFs: x%.2f (linear = 4.00)\n", b/a }' "$f"
