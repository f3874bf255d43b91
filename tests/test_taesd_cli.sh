#!/usr/bin/env bash
# `generate --taesd DIR --vae-decoder tiny` and `--preview FILE` on the tiny
# KOALA model with the TAESD folder of tests/data/taesd: the PNGs are written
# (the preview at latent size without TAESD, full size with it), the infotext
# names the decoder, and bad combinations are refused before any work.
set -u
bin="${LEANDIFF_BIN:?}"
src="${LEANDIFF_SOURCE_DIR:?}"
. "$src/tests/lib/testdata.bash"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/taesd_cli"
rm -rf "$dir"; mkdir -p "$dir"
model="$dir/tiny"; taesd="$dir/taesd"
make_tiny_model "$model"
make_taesd "$taesd"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }
# width x height of a PNG from its IHDR chunk
size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $3*256+$4 "x" $7*256+$8}'; }

"$bin" generate -m "$model" -p "a koala" -W 64 -H 64 --steps 3 -q --taesd "$taesd" --vae-decoder tiny -o "$dir/tiny.png" >/dev/null 2>"$dir/err"
check "tiny decoder writes the image" '[ "$(size "$dir/tiny.png")" = 64x64 ]'
check "infotext names the decoder" '"$bin" info "$dir/tiny.png" | grep -q "VAE: TAESD"'
"$bin" generate -m "$model" -p "a koala" -W 64 -H 64 --steps 3 -q --preview "$dir/p1.png" -o "$dir/a.png" >/dev/null 2>&1
check "linear preview at latent size" '[ "$(size "$dir/p1.png")" = 8x8 ] && [ -s "$dir/a.png" ]'
"$bin" generate -m "$model" -p "a koala" -W 64 -H 64 --steps 3 -q --preview "$dir/p2.png" --preview-every 2 --taesd "$taesd" -o "$dir/b.png" >/dev/null 2>&1
check "TAESD preview at full size" '[ "$(size "$dir/p2.png")" = 64x64 ]'
check "the full VAE still decodes the image" 'cmp -s "$dir/a.png" "$dir/b.png"'
"$bin" generate -m "$model" -p x --vae-decoder tiny -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "--vae-decoder tiny without --taesd is a usage error" '[ $rc -eq 2 ] && grep -q "taesd" "$dir/err" && [ ! -e "$dir/x.png" ]'
"$bin" generate -m "$model" -p x --vae-decoder huge -o "$dir/x.png" 2>/dev/null; rc=$?
check "unknown --vae-decoder is a usage error" '[ $rc -eq 2 ]'
mkdir -p "$dir/adir"
"$bin" generate -m "$model" -p x --preview "$dir/adir" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a folder as --preview is refused before any work" '[ $rc -eq 1 ] && grep -q -- "--preview" "$dir/err" && [ ! -e "$dir/x.png" ]'
"$bin" generate -m "$model" -p x -W 64 -H 64 --steps 1 --taesd "$dir/nowhere" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a missing TAESD folder is named" '[ $rc -eq 1 ] && grep -q nowhere "$dir/err" && [ ! -e "$dir/x.png" ]'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
