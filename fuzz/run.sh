#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) against the
# library sources and runs each for a bounded time.
# Targets run side by side, as many at a time as there are cores
# (LEANDIFF_FUZZ_JOBS to change); each one's output is printed when it ends.
#   fuzz/run.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
out=build-fuzz
mkdir -p "$out"
# -Wno-pass-failed: at -O1 clang does not vectorize, and says so for every
# "omp simd" loop (a speed hint; the fuzz builds want coverage, not speed)
flags="-g -O1 -Wno-pass-failed -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -DLD_VERSION=\"fuzz\" -Iinclude -Isrc"
libs="$(pkg-config --cflags --libs jansson libutf8proc libpng libjpeg libwebp) -fopenmp -lm"
# Library sources needed by the targets (portable code only).
common="src/base/status.c src/base/arena.c src/tensor/tensor.c src/tensor/gemm_cache.c src/io/fileio.c src/io/json.c src/io/safetensors.c src/io/weights_memory.c src/base/meminfo.c"
jobs="${LEANDIFF_FUZZ_JOBS:-$(nproc)}"
logs="$out/logs"
rm -rf "$logs"; mkdir -p "$logs"
# crash-, timeout- and slow-unit- inputs land here, not in the work tree
artifacts="$out/artifacts"
mkdir -p "$artifacts"

# Builds and runs one target; its output goes to $logs/NAME.log, its exit
# status to $logs/NAME.rc.
run_target() {
  local target="$1" name extra corpus work
  set +e  # a failing build or a crash is recorded in $logs/NAME.rc, not fatal here
  name=$(basename "$target" .c)
  extra=""
  if [ "$name" = fuzz_png ]; then
    extra="src/io/png.c src/io/base64.c"
  fi
  if [ "$name" = fuzz_prompt ]; then
    extra="src/text/prompt_syntax.c src/text/clip_tokenizer.c src/text/clip_clean.c src/text/html_entities_data.c"
  fi
  if [ "$name" = fuzz_tokenizer ]; then
    extra="src/text/clip_tokenizer.c src/text/clip_clean.c src/text/html_entities_data.c"
    export LEANDIFF_TOKENIZER_DIR="${LEANDIFF_TOKENIZER_DIR:-$(pwd)/../shared/testdata/tokenizer}"
  fi
  if [ "$name" = fuzz_redis_url ]; then extra="app/redis_url.c -Iapp"; fi
  if [ "$name" = fuzz_dataset ]; then extra="src/train/dataset.c src/text/clip_clean.c src/text/html_entities_data.c"; fi
  if [ "$name" = fuzz_picture ]; then extra="src/io/picture.c src/io/jpeg.c src/io/png.c src/io/base64.c"; fi
  if [ "$name" = fuzz_lora ]; then
    # the merge multiplies on ld_gemm: its SIMD kernels need their own target flags
    extra="src/models/lora_merge.c src/models/sgm_names.c src/io/weights.c src/tensor/gemm.c src/tensor/gemm_conv.c src/base/cpu.c src/base/flops.c"
    case "$(uname -m)" in
      x86_64)
        clang $flags -c src/tensor/gemm_avx512.c -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma -mf16c -mavx2 -o "$out/gemm_avx512.o"
        clang $flags -c src/tensor/gemm_amx.c -mamx-tile -mamx-bf16 -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma -mf16c -mavx2 -o "$out/gemm_amx.o"
        clang $flags -c src/tensor/gemm_avx2.c -mavx2 -mfma -mf16c -o "$out/gemm_avx2.o"
        extra="$extra $out/gemm_avx512.o $out/gemm_amx.o $out/gemm_avx2.o" ;;
      aarch64) extra="$extra src/tensor/gemm_neon.c" ;;
    esac
  fi
  if [ "$name" = fuzz_image_prep ]; then
    extra="src/io/png.c src/io/base64.c src/pipeline/image_prep.c"
  fi
  if [ "$name" = fuzz_batch_line ]; then extra="app/batch_line.c -Iapp"; fi
  if [ "$name" = fuzz_redis_msg ]; then extra="app/redis_msg.c -Iapp"; fi
  if [ "$name" = fuzz_multipart ]; then
    extra="app/multipart.c app/server_upload.c src/io/png.c src/io/jpeg.c src/io/base64.c -Iapp"
  fi
  if [ "$name" = fuzz_job_params ]; then
    extra="app/server_request.c app/server_upload.c src/io/png.c src/io/jpeg.c src/io/base64.c $(ls src/sched/*.c) -Iapp"
  fi
  corpus="fuzz/corpus_${name#fuzz_}"
  mkdir -p "$corpus"
  work="$out/corpus_${name#fuzz_}"
  mkdir -p "$work"
  {
    echo "== $name: building"
    clang $flags "$target" $common $extra $libs -o "$out/$name" &&
    echo "== $name: fuzzing for ${secs}s" &&
    ASAN_OPTIONS=detect_leaks=1 "$out/$name" -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$artifacts/$name-" "$work" "$corpus" > "$logs/$name.fuzz" 2>&1
    local rc=$?
    if [ -f "$logs/$name.fuzz" ]; then tail -n 3 "$logs/$name.fuzz"; fi
    echo "$rc" > "$logs/$name.rc"
  } > "$logs/$name.log" 2>&1
}

for target in fuzz/fuzz_*.c; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$target" &
done
wait
failed=0
for target in fuzz/fuzz_*.c; do
  name=$(basename "$target" .c)
  cat "$logs/$name.log"
  if [ "$(cat "$logs/$name.rc" 2>/dev/null)" != 0 ]; then
    echo "fuzz: $name FAILED (whole output: $logs/$name.log and $logs/$name.fuzz)"
    failed=$((failed + 1))
  fi
done
[ "$failed" = 0 ] || { echo "fuzz: $failed target(s) failed"; exit 1; }
echo "fuzz: all targets ran without a crash"
