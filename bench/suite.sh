#!/bin/bash
# The model-component table of bench/RESULTS.md in one command: every row
# `leandiff bench --json` at 1024x1024 (--size; the U-Net at batch 2, a CFG step),
# f32 and bf16, each right after a run of ../shared/tools/fma_peak.c (built
# as its header says) so that its ratio uses a figure of the same minute,
# next to the theoretical limit `leandiff bench` measured in the same
# process (twice that for bf16 where the CPU has AVX-512 BF16 dot products).
# Two warm-up runs: after the first evaluation the activation arena is
# replaced by one block of the planned size, whose pages are first touched
# by the second (see docs/bench.md). With --whole it also times whole KOALA-Lightning-700M 1024x1024
# generations (/usr/bin/time -v for the peak RSS).
#
#     bench/suite.sh --models DIR [--size 1024] [--threads N] [--runs 3] [--only SUBSTRING] [--whole] [--fma-peak FILE.c]
#
# DIR holds random-weight folders of the real sizes (made once, about 15 GB):
#     leandiff init-random --pipeline koala-lightning-700m --out DIR/koala-lightning-700m --dtype f16
#     leandiff init-random --config CONFIGS/wuerstchen-prior/prior/config.json --out DIR/wuerstchen-prior --dtype f16
#     leandiff init-random --config CONFIGS/wuerstchen/decoder/config.json --out DIR/wuerstchen-decoder --dtype f16
#     leandiff init-random --config CONFIGS/stable-cascade-prior/prior_lite/config.json --out DIR/cascade-prior-lite --dtype f16
#     leandiff init-random --config CONFIGS/stable-cascade/decoder_lite/config.json --out DIR/cascade-decoder-lite --dtype f16
# (CONFIGS = ../shared/testdata/configs). Missing folders are skipped.
# With --whole, Stable Cascade lite is also generated whole when DIR holds the
# two pipeline folders stable-cascade-lite-prior/ and stable-cascade-lite/:
# the json files, tokenizer and scheduler of the tiny test pipelines
# (../shared/testdata/models/stable-cascade-prior-tiny, stable-cascade-tiny)
# with prior/ = cascade-prior-lite, decoder/ = cascade-decoder-lite, a
# text_encoder/ from CONFIGS/stable-cascade-prior/text_encoder/config.json
# (the same one in both) and a vqgan/ of the released Stage A config
# (PaellaVQModel: bottleneck_blocks 12, embed_dim 384, levels 2,
# latent_channels 4, num_vq_embeddings 8192, scale_factor 0.3764).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${LEANDIFF_BIN:-$here/build/leandiff}
models="" size=1024 threads=$(nproc) runs=3 only="" whole=0 fma_src="$here/../shared/tools/fma_peak.c"
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --whole) whole=1; shift ;;
    --fma-peak) fma_src=$2; shift 2 ;;
    *) echo "usage: bench/suite.sh --models DIR [--size 1024] [--threads N] [--runs 3] [--only SUBSTRING] [--whole] [--fma-peak FILE.c]" >&2; exit 2 ;;
  esac
done
[ -n "$models" ] && [ -d "$models" ] || { echo "suite.sh: --models DIR is required (a folder of random-weight models)" >&2; exit 2; }
[ -x "$bin" ] || { echo "suite.sh: no $bin (run make first)" >&2; exit 2; }
[ -f "$fma_src" ] || { echo "suite.sh: no $fma_src (give --fma-peak)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -march=native -fopenmp "$fma_src" -o "$tmp/fma_peak"
fma() { OMP_NUM_THREADS=$threads "$tmp/fma_peak"; }

commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$here" diff --quiet 2>/dev/null || commit="$commit+changes"
echo "leandiff $commit, $(date -u '+%Y-%m-%d %H:%M UTC'), $threads threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
cpuinfo() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
echo "cpu: $(cpuinfo 'model name') (family $(cpuinfo 'cpu family'), model $(cpuinfo model))"
echo
echo "| row | precision | runs (s) | seconds | GFLOP | GFLOP/s | probe | theory | **of theory** | fma_peak.c | of fma_peak.c | peak RSS MB | breakdown |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"

row() {  # name folder component batch
  local name=$1 dir=$2 comp=$3 batch=$4 prec ref
  [ -d "$dir" ] || { echo "| $name | skipped: no $dir | | | | | | | | | | | |"; return; }
  case "$name" in *"$only"*) ;; *) return ;; esac
  for prec in f32 bf16; do
    ref=$(fma)
    "$bin" bench -m "$dir" --component "$comp" --batch "$batch" -W "$size" -H "$size" -t "$threads" --runs "$runs" \
      --warmup 2 --precision "$prec" --ref-peak "$ref" --json > "$tmp/out.txt" 2> "$tmp/err.txt" ||
      { echo "| $name | $prec | failed: $(tail -1 "$tmp/err.txt") | | | | | | | | | | |"; continue; }
    tail -1 "$tmp/out.txt" | python3 -c '
import json, sys
j = json.load(sys.stdin); name = sys.argv[1]
bf = j["precision"] == "bf16" and "bf16" in j["gemm_kernel"] and "emulated" not in j["gemm_kernel"]
lim = j["theory_gflops"] * (2 if bf else 1); ref = j["ref_peak_gflops"] * (2 if bf else 1)
b = j["breakdown"]; tot = sum(v["seconds"] for v in b.values()) or 1
split = ", ".join("%s %.0f%%" % (k, 100 * v["seconds"] / tot) for k, v in b.items() if v["seconds"] > 0)
print("| %s | %s | %s | %.2f | %.1f | %.1f | %.1f | %.1f%s | **%.1f %%** | %.1f | %.1f %% | %.0f | %s |" % (
    name, j["precision"], ", ".join("%.2f" % r for r in j["runs"]), j["seconds"], j["gflop"], j["gflops"],
    j["peak_gflops"], lim, " (bf16)" if bf else "", 100 * j["gflops"] / lim, j["ref_peak_gflops"],
    100 * j["gflops"] / ref, j["peak_rss_mb"], split))' "$name"
  done
}

row "KOALA-700M U-Net, batch 2" "$models/koala-lightning-700m/unet" unet 2
row "SDXL VAE decode, tiled" "$models/koala-lightning-700m/vae" vae 1
row "WuerstchenPrior" "$models/wuerstchen-prior" prior 1
row "WuerstchenDiffNeXt" "$models/wuerstchen-decoder" decoder 1
row "StableCascadeUNet lite prior" "$models/cascade-prior-lite" prior 1
row "StableCascadeUNet lite decoder" "$models/cascade-decoder-lite" decoder 1

[ "$whole" = 1 ] || exit 0

# One whole generation under /usr/bin/time -v: a table row with the wall and
# user seconds, the peak RSS and each stage's total from the progress lines.
whole_row() {  # precision, then the generate arguments
  local prec=$1 ref wall user rss stages
  shift
  ref=$(fma)
  /usr/bin/time -v "$bin" generate "$@" -W "$size" -H "$size" --seed 1 -t "$threads" --precision "$prec" -v \
    -o "$tmp/img.png" > "$tmp/gen.out" 2> "$tmp/gen.err" ||
    { echo "| $prec | $ref | failed: $(grep -v '^\s' "$tmp/gen.err" | tail -1) | | | |"; return; }
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$tmp/gen.err")
  user=$(awk -F': ' '/User time/ {print $2}' "$tmp/gen.err")
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.2f", $2 / 1048576}' "$tmp/gen.err")
  # the last progress line of each stage: "unet 10/10, 9.8 s/step, 98.1s"
  stages=$(tr '\r' '\n' < "$tmp/gen.err" | awk '/^[a-z_]+ [0-9]+\/[0-9]+, .* s\/step, [0-9.]+s$/ {
      if (!($1 in t)) order[++n] = $1; t[$1] = $NF }
      END { for (i = 1; i <= n; i++) printf "%s%s %s", (i > 1 ? ", " : ""), order[i], t[order[i]] }')
  echo "| $prec | $ref | $wall | $user | $rss | ${stages:--} |"
}

echo
echo "Whole KOALA-Lightning-700M ${size}x$size images (10 steps, guidance 3.5, seed 1):"
echo
echo "| precision | fma_peak.c before | wall s | user s | peak RSS GB | stages |"
echo "|---|---|---|---|---|---|"
for prec in bf16 f32; do
  whole_row "$prec" -m "$models/koala-lightning-700m" -p "a koala in a tree" --steps 10 --cfg-scale 3.5
done
[ -d "$models/stable-cascade-lite-prior" ] && [ -d "$models/stable-cascade-lite" ] || exit 0
echo
echo "Whole Stable Cascade lite ${size}x$size images (the pipelines' defaults: 20 prior steps at 4, 10 decoder steps):"
echo
echo "| precision | fma_peak.c before | wall s | user s | peak RSS GB | stages |"
echo "|---|---|---|---|---|---|"
for prec in bf16 f32; do
  whole_row "$prec" -m "$models/stable-cascade-lite-prior" --decoder "$models/stable-cascade-lite" -p "a raccoon reading a newspaper"
done
