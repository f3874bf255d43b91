#!/usr/bin/env bash
# Cancel inside a step and sizes that do not fit (issue 16, point 2), through
# `leandiff generate` on a random tiny KOALA pipeline made by init-random:
#  - Ctrl-C (SIGINT) during the U-Net call of a large one-step image stops
#    within seconds (not at the end of the step) with the cancel message,
#    exit 1, no file;
#  - a size whose activations exceed the memory available is refused before
#    any work with the estimate (LEANDIFF_MEMORY_LIMIT stands in for a small
#    machine); a malformed LEANDIFF_MEMORY_LIMIT is an error naming it.
set -u
bin="${LEANDIFF_BIN:?}"
. "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/cancel_cli"
rm -rf "$dir"; mkdir -p "$dir/out"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }
now() { date +%s.%N; }

"$bin" init-random --pipeline tiny --out "$dir/m" >/dev/null || { echo "FAIL: init-random"; exit 1; }

# 2048x2048, one step: the U-Net call takes about a minute (16k-token
# self-attentions); Ctrl-C after 1.5 s must not wait for it.
"$bin" generate -m "$dir/m" -p "a koala" -W 2048 -H 2048 --steps 1 -q -o "$dir/out/big.png" 2>"$dir/err" &
pid=$!
sleep 1.5
t0=$(now)
kill -INT $pid
for _ in $(seq 1 200); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fi
wait $pid; rc=$?
secs=$(awk -v a="$t0" -v b="$(now)" "BEGIN { print b - a }")
echo "SIGINT -> exit $rc after $secs s: $(cat "$dir/err")"
check "Ctrl-C inside a step stops within 10 s (a loaded machine; the step takes a minute)" 'awk -v s="$secs" "BEGIN { exit !(s < 10) }"'
check "  with exit 1 and the cancel message" '[ $rc -eq 1 ] && grep -q "generation cancelled during the" "$dir/err"'
check "  and no file (not even a temporary one)" '[ -z "$(ls -A "$dir/out")" ]'

t0=$(now)
LEANDIFF_MEMORY_LIMIT=1G "$bin" generate -m "$dir/m" -p "a koala" -W 8192 -H 8192 --steps 1 -q \
    -o "$dir/out/huge.png" 2>"$dir/err"; rc=$?
secs=$(awk -v a="$t0" -v b="$(now)" "BEGIN { print b - a }")
echo "8192x8192 with 1 GB -> exit $rc after $secs s: $(cat "$dir/err")"
check "a size that does not fit is refused with the estimate" \
    '[ $rc -eq 1 ] && grep -Eq "image size 8192x8192 needs about [0-9.]+ GB of memory .* but 1.0 GB is available \(LEANDIFF_MEMORY_LIMIT\)" "$dir/err"'
check "  before any work (in under 5 s) and nothing is written" 'awk -v s="$secs" "BEGIN { exit !(s < 5) }" && [ -z "$(ls -A "$dir/out")" ]'
# (2048x2048: the U-Net about 0.3 GB, the tiny TAESD's whole-image decode about 0.8 GB)
make_taesd "$dir/taesd"
LEANDIFF_MEMORY_LIMIT=500M "$bin" generate -m "$dir/m" -p "a koala" -W 2048 -H 2048 --steps 1 -q \
    --taesd "$dir/taesd" --vae-decoder tiny -o "$dir/out/taesd.png" 2>"$dir/err"; rc=$?
echo "2048x2048 TAESD with 500 MB -> exit $rc: $(cat "$dir/err")"
check "the tiny decoder's whole-image decode is checked too" \
    '[ $rc -eq 1 ] && grep -q "needs about [0-9.]* GB of memory for the TAESD decode" "$dir/err" && [ -z "$(ls -A "$dir/out")" ]'
LEANDIFF_MEMORY_LIMIT=lots "$bin" generate -m "$dir/m" -p "a koala" -W 64 -H 64 --steps 1 -q -o "$dir/out/x.png" \
    2>"$dir/err"; rc=$?
check "a malformed LEANDIFF_MEMORY_LIMIT is an error naming it" \
    '[ $rc -eq 1 ] && grep -q "LEANDIFF_MEMORY_LIMIT=.lots. is not a size" "$dir/err"'
LEANDIFF_MEMORY_LIMIT=1G "$bin" generate -m "$dir/m" -p "a koala" -W 256 -H 256 --steps 1 -q -o "$dir/out/ok.png" \
    2>"$dir/err"; rc=$?
check "a size that fits still runs under the limit" '[ $rc -eq 0 ] && [ -s "$dir/out/ok.png" ]'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
