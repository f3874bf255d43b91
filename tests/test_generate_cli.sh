#!/usr/bin/env bash
# CLI checks for `leandiff generate` and `leandiff info`: every bad input
# gives a clear message, exit status 1 (runtime) or 2 (usage), and leaves no
# output file (not even a temporary one). Run by ctest with LEANDIFF_BIN set.
set -u
BIN=${LEANDIFF_BIN:?}
. "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"
TMP=${LEANDIFF_BUILD_DIR:-/tmp/leandiff-tests}/test-tmp/generate_cli
rm -rf "$TMP" && mkdir -p "$TMP"
MODEL=${TMP}_model/tiny   # random weights (init-random): these checks need no reference numbers
make_tiny_model "$MODEL"
fails=0
checks=0

# expect STATUS PATTERN ARGS... : runs generate with -o $TMP/out.png appended
# unless the args contain their own -o; checks exit status, message, no file.
expect() {
    local want=$1 pattern=$2
    shift 2
    checks=$((checks + 1))
    rm -f "$TMP"/*.png "$TMP"/*.tmp.*
    local out
    out=$("$BIN" generate "$@" 2>&1 >/dev/null)
    local rc=$?
    if [ "$rc" != "$want" ] || ! grep -qiE -- "$pattern" <<<"$out"; then
        echo "FAIL: generate $* -> exit $rc (want $want), message: $out (want /$pattern/)"
        fails=$((fails + 1))
    elif ls "$TMP" | grep -q .; then
        echo "FAIL: generate $* left files: $(ls "$TMP")"
        fails=$((fails + 1))
    else
        echo "ok   exit $rc: $out"
    fi
}

O=(-o "$TMP/out.png")
expect 2 "is required" -p "a cat" "${O[@]}"
expect 2 "is required" -m "$MODEL" "${O[@]}"
expect 2 "unknown option '--bogus'" -m "$MODEL" -p x --bogus "${O[@]}"
expect 2 "unknown option" -m "$MODEL" -p x -Z "${O[@]}"
expect 2 "needs a value" -m "$MODEL" -p x "${O[@]}" --steps
expect 2 "--steps expects an integer" -m "$MODEL" -p x --steps ten "${O[@]}"
expect 2 "--steps must be between 1 and 1000" -m "$MODEL" -p x --steps -3 "${O[@]}"
expect 2 "--steps must be between" -m "$MODEL" -p x --steps 0 "${O[@]}"
expect 2 "--width must be between 1 and 8192" -m "$MODEL" -p x -W 0 "${O[@]}"
expect 2 "--height must be between 1 and 8192" -m "$MODEL" -p x -H 100000 "${O[@]}"
expect 2 "--width expects an integer" -m "$MODEL" -p x -W 12x "${O[@]}"
expect 2 "--cfg-scale must be between" -m "$MODEL" -p x --cfg-scale -1 "${O[@]}"
expect 2 "--cfg-scale expects a number" -m "$MODEL" -p x --cfg-scale nan "${O[@]}"
expect 2 "--seed" -m "$MODEL" -p x -s abc "${O[@]}"
expect 2 "--seed" -m "$MODEL" -p x -s -5 "${O[@]}"
expect 2 "--batch-count must be between" -m "$MODEL" -p x -b 0 "${O[@]}"
expect 2 "--threads must be between" -m "$MODEL" -p x -t 0 "${O[@]}"
expect 2 "--precision must be f32 or bf16" -m "$MODEL" -p x --precision f16 "${O[@]}"
expect 2 "unknown --sampler 'dpm'; one of: euler" -m "$MODEL" -p x --sampler dpm "${O[@]}"
expect 2 "--schedule must be default or karras" -m "$MODEL" -p x --schedule exponential "${O[@]}"
expect 2 "unexpected argument 'cat'" -m "$MODEL" -p a cat "${O[@]}"
expect 2 "pattern" -m "$MODEL" -p x -o "$TMP/img-%s.png"
expect 1 "the folder /nonexistent-dir/sub does not exist" -m "$MODEL" -p x -o /nonexistent-dir/sub/out.png
expect 1 "not found" -m "$TMP/no-such-model" -p x "${O[@]}"

# size checks that are the pipeline's: multiples of 8 for the SDXL family
expect 1 "multiples of 8" -m "$MODEL" -p x -W 100 -H 64 "${O[@]}"
if [ -f "$td/cases/koala-700m-tiny/pipeline0.safetensors" ]; then
    expect 1 "replay tensor 'latents0' has shape" -m "$MODEL" -p x -W 64 -H 64 --steps 1 \
        --replay-noise "$td/cases/koala-700m-tiny/pipeline0.safetensors" "${O[@]}"
    expect 1 "sampler|steps|replay" -m "$MODEL" -p x --steps 2 --sampler euler_a \
        --replay-noise "$td/cases/koala-700m-tiny/pipeline0.safetensors" -W 128 -H 128 "${O[@]}"
else
    echo "SKIP (part): replay checks: $td/cases/koala-700m-tiny not found"
fi

# successful runs: batch naming (out.png, out-1.png), seeds seed, seed+1 in the
# metadata, printf patterns, and `info` reading the parameters back
if [ -d "$MODEL" ]; then
    checks=$((checks + 1))
    rm -f "$TMP"/*
    "$BIN" generate -m "$MODEL" -p "a tiny koala, test" -n "blurry" -W 64 -H 64 --steps 1 -s 41 -b 2 -q \
        -o "$TMP/out.png" >"$TMP/stdout.txt" 2>"$TMP/stderr.txt"
    rc=$?
    info=$("$BIN" info "$TMP/out-1.png" 2>&1)
    want="Steps: 1, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: tiny"
    if [ $rc != 0 ] || [ ! -f "$TMP/out.png" ] || ! grep -qF "$want" <<<"$info" ||
        [ "$(head -1 <<<"$info")" != "a tiny koala, test" ] || ! grep -qx "Negative prompt: blurry" <<<"$info" ||
        ! grep -q "out-1.png: 64x64, seed 42" "$TMP/stdout.txt"; then
        echo "FAIL: batch run: exit $rc, files: $(ls "$TMP"), info: $info, stderr: $(cat "$TMP/stderr.txt")"
        fails=$((fails + 1))
    else echo "ok   batch run: $(tr '\n' '|' <<<"$info")"; fi
    checks=$((checks + 1))
    rm -f "$TMP"/*
    "$BIN" generate -m "$MODEL" -p "pattern" -W 64 -H 64 --steps 1 -b 2 -q --no-vae-tiling -o "$TMP/img-%03d-100%%.png" >/dev/null 2>&1
    rc=$?
    if [ $rc != 0 ] || [ ! -f "$TMP/img-000-100%.png" ] || [ ! -f "$TMP/img-001-100%.png" ]; then
        echo "FAIL: pattern output: exit $rc, files: $(ls "$TMP")"; fails=$((fails + 1))
    else echo "ok   pattern output: $(ls "$TMP" | tr '\n' ' ')"; fi
fi

# Output targets (src/io/fileio.h): what is not a regular file of ours is
# refused before any work, naming it, and left as it was. The model folder
# given is missing, so an answer about the output proves it came first.
OUT=${TMP}_targets
rm -rf "$OUT" && mkdir -p "$OUT"
mkfifo "$OUT/fifo"
mkdir "$OUT/adir"
echo keep >"$OUT/target.png"
ln -s "$OUT/target.png" "$OUT/link.png"
ln -s "$OUT/fifo" "$OUT/fifo-link.png"
echo file >"$OUT/file.txt"
# refused STATUS PATTERN ARGS...: exit STATUS within 5 s, message matches.
refused() {
    local want=$1 pattern=$2
    shift 2
    checks=$((checks + 1))
    local t0 out rc t1
    t0=$(date +%s%N)
    out=$(timeout 60 "$BIN" generate -m "$TMP/no-such-model" -p x "$@" 2>&1 >/dev/null)
    rc=$?
    t1=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [ "$rc" != "$want" ] || ! grep -qE -- "$pattern" <<<"$out" || [ "$t1" -gt 5000 ]; then
        echo "FAIL: generate $* -> exit $rc after $t1 ms (want $want), message: $out (want /$pattern/)"
        fails=$((fails + 1))
    else
        echo "ok   exit $rc in $t1 ms: $out"
    fi
}
refused 1 "$OUT/fifo is a FIFO \\(named pipe\\)" -o "$OUT/fifo"
refused 1 "$OUT/adir is a folder" -o "$OUT/adir"
refused 1 "$OUT/adir/ names a folder" -o "$OUT/adir/"
refused 1 "$OUT/link.png is a symbolic link" -o "$OUT/link.png"
refused 1 "$OUT/fifo-link.png is a symbolic link" -o "$OUT/fifo-link.png"
refused 1 "$OUT/file.txt is not a folder" -o "$OUT/file.txt/out.png"
refused 1 "the folder $OUT/nope does not exist" -o "$OUT/nope/out.png"
mkdir "$OUT/out-1.png"   # the second name of a batch is checked too
refused 1 "$OUT/out-1.png is a folder" -o "$OUT/out.png" -b 2
rmdir "$OUT/out-1.png"
refused 1 "--dump: $OUT/adir is a folder" -o "$OUT/ok.png" --dump "$OUT/adir"
refused 2 "holds one image" -o - -b 2
refused 2 "cannot both go to standard output" -o - --dump -
if [ "$(id -u)" = 0 ]; then
    echo theirs >"$OUT/theirs.png" && chown 12345 "$OUT/theirs.png"
    refused 1 "$OUT/theirs.png belongs to another user" -o "$OUT/theirs.png"
else
    echo mine >"$OUT/readonly.png" && chmod 444 "$OUT/readonly.png"
    refused 1 "$OUT/readonly.png is read-only" -o "$OUT/readonly.png"
fi
checks=$((checks + 1))
if [ -p "$OUT/fifo" ] && [ -d "$OUT/adir" ] && [ -L "$OUT/link.png" ] && [ "$(cat "$OUT/target.png")" = keep ] &&
    [ -z "$(ls "$OUT" | grep '\.tmp\.')" ]; then
    echo "ok   targets left as they were, no temporary files"
else
    echo "FAIL: targets changed: $(ls -l "$OUT")"; fails=$((fails + 1))
fi
if [ -d "$MODEL" ]; then
    # A regular file of ours is replaced and keeps its permissions.
    checks=$((checks + 1))
    echo old >"$OUT/mine.png" && chmod 600 "$OUT/mine.png"
    "$BIN" generate -m "$MODEL" -p x -W 64 -H 64 --steps 1 -q -o "$OUT/mine.png" >/dev/null 2>&1
    rc=$?
    if [ $rc = 0 ] && [ "$(head -c 4 "$OUT/mine.png" | tail -c 3)" = PNG ] && [ "$(stat -c %a "$OUT/mine.png")" = 600 ]; then
        echo "ok   a regular file of ours is replaced, mode 600 kept"
    else echo "FAIL: replacing mine.png: exit $rc, $(ls -l "$OUT/mine.png")"; fails=$((fails + 1)); fi
    # "-" streams the PNG; the summary goes to stderr. (/dev/stdout is tested
    # in test_fileio, guarded: a broken build must never rename over it.)
    for o in -; do
        checks=$((checks + 1))
        "$BIN" generate -m "$MODEL" -p "to stdout" -W 64 -H 64 --steps 1 -q -o "$o" >"$OUT/stream.png" 2>"$OUT/err.txt"
        rc=$?
        info=$("$BIN" info "$OUT/stream.png" 2>&1)
        if [ $rc = 0 ] && [ "$(head -1 <<<"$info")" = "to stdout" ] && grep -q "^stdout: 64x64" "$OUT/err.txt"; then
            echo "ok   -o $o: PNG on stdout ($(stat -c %s "$OUT/stream.png") bytes), summary on stderr"
        else echo "FAIL: -o $o: exit $rc, info: $info, stderr: $(cat "$OUT/err.txt")"; fails=$((fails + 1)); fi
    done
    # Through a pipe too (no seeking, no rename).
    checks=$((checks + 1))
    n=$("$BIN" generate -m "$MODEL" -p x -W 64 -H 64 --steps 1 -q -o - 2>/dev/null | wc -c)
    if [ "$n" -gt 100 ]; then echo "ok   -o - into a pipe: $n bytes"
    else echo "FAIL: -o - into a pipe: $n bytes"; fails=$((fails + 1)); fi
fi
rm -rf "$OUT"

# info: non-PNG and PNG without parameters
checks=$((checks + 1))
echo "not a png" >"$TMP/fake.png"
msg=$("$BIN" info "$TMP/fake.png" 2>&1)
rc=$?
if [ $rc != 1 ] || ! grep -q "not a PNG" <<<"$msg"; then
    echo "FAIL: info on a non-PNG: exit $rc, $msg"; fails=$((fails + 1))
else echo "ok   info: $msg"; fi
checks=$((checks + 1))
# a valid 1x1 PNG without text chunks
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82' >"$TMP/plain.png"
msg=$("$BIN" info "$TMP/plain.png" 2>&1)
rc=$?
if [ $rc != 1 ] || ! grep -q "no 'parameters'" <<<"$msg"; then
    echo "FAIL: info on a PNG without parameters: exit $rc, $msg"; fails=$((fails + 1))
else echo "ok   info: $msg"; fi
checks=$((checks + 1))
msg=$("$BIN" info 2>&1); rc=$?
if [ $rc != 2 ]; then echo "FAIL: info without a file: exit $rc"; fails=$((fails + 1)); else echo "ok   info usage"; fi

# --precision bf16 on a CPU without bf16 products (LEANDIFF_CPU=avx2 hides them on any CPU) is emulated:
# said once per process (two images here), and never for f32
checks=$((checks + 1))
gen_avx2() { LEANDIFF_CPU=avx2 "$BIN" generate -m "$MODEL" -p "a koala" -W 64 -H 64 --steps 2 -q -o "$TMP/p.png" "$@" 2>&1 >/dev/null; }
e16=$(gen_avx2 --precision bf16 -b 2); e32=$(gen_avx2 --precision f32)
if [ "$(grep -c 'bf16 is emulated' <<<"$e16")" = 1 ] && ! grep -q emulated <<<"$e32"; then
    echo "ok   --precision bf16 without bf16 products: one warning that it is emulated, none for f32"
else
    echo "FAIL: emulated bf16 warning: bf16 said: $e16 / f32 said: $e32"
    fails=$((fails + 1))
fi

rm -rf "$TMP"
echo "$checks checks, $fails failed"
[ $fails = 0 ]
