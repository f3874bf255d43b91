#!/bin/bash
# Checks the denominator: runs ../shared/tools/fma_peak.c (as given, built as
# its header says) and build/bench_peak in the same minute, on 1 thread and
# on all, and shows how many FMA instructions the compiler left in
# fma_peak's timed loop (the source counts 12 per iteration).
#
#     bench/peak.sh [FMA_PEAK_C]     (default: ../shared/tools/fma_peak.c)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/../shared/tools/fma_peak.c}
bin=${LEANDIFF_BUILD_DIR:-$here/build}/bench_peak
[ -f "$src" ] || { echo "peak.sh: no $src (give the path of fma_peak.c)" >&2; exit 2; }
[ -x "$bin" ] || { echo "peak.sh: no $bin (run make first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -march=native -fopenmp "$src" -o "$tmp/fma_peak"
# The timed loop is a backward branch over packed FMAs (in main or its
# OpenMP outlined body); print the FMAs of the smallest such loop.
objdump -d --no-show-raw-insn "$tmp/fma_peak" | awk '
  function hex(s,   i, v) { v = 0; s = tolower(s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
  /^[0-9a-f]+ <main/ { on = 1; next } /^[0-9a-f]+ </ { on = 0 }
  on && /^ *[0-9a-f]+:/ {
    sub(/:/, "", $1); addr = hex($1); n++; a[n] = addr; fma[n] = ($0 ~ /vfmadd[0-9]+ps/)
    if ($2 ~ /^j/ && $3 ~ /^[0-9a-f]+$/) {
      tgt = hex($3)
      if (tgt < addr) { c = 0; for (i = 1; i <= n; i++) if (a[i] >= tgt && fma[i]) c++
        if (c > 0 && (best == 0 || c < best)) best = c }
    }
  }
  END { printf "fma_peak.c timed loop as compiled: %d packed FMA instruction(s) per iteration; the source counts 12\n", best }'
nproc=$(nproc)
echo "fma_peak.c (as given): 1 thread $(OMP_NUM_THREADS=1 "$tmp/fma_peak") GFLOP/s, $nproc threads $(OMP_NUM_THREADS=$nproc "$tmp/fma_peak") GFLOP/s"
"$bin" --threads "$nproc" --cores
echo "fma_peak.c (as given): 1 thread $(OMP_NUM_THREADS=1 "$tmp/fma_peak") GFLOP/s, $nproc threads $(OMP_NUM_THREADS=$nproc "$tmp/fma_peak") GFLOP/s"
