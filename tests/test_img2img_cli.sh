#!/usr/bin/env bash
# `generate -i INIT.png --strength S [--mask MASK.png]` on a random tiny
# KOALA model (init-random): the PNG is written with the strength in its infotext; bad flags and
# files are refused before any work. (The numbers are test_img2img's job.)
set -u
bin="${LEANDIFF_BIN:?}"
. "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/img2img_cli"
rm -rf "$dir"; mkdir -p "$dir"
model="$dir/tiny"
make_tiny_model "$model"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }
size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $3*256+$4 "x" $7*256+$8}'; }

"$bin" generate -m "$model" -p "a koala" -W 96 -H 64 --steps 2 -q -o "$dir/init.png" >/dev/null 2>&1
"$bin" generate -m "$model" -p "a red koala" -i "$dir/init.png" --strength 0.5 --steps 4 -q -o "$dir/i2i.png" >/dev/null 2>"$dir/err"
check "image-to-image at the init image's size" '[ "$(size "$dir/i2i.png")" = 96x64 ]'
check "infotext has the strength" '"$bin" info "$dir/i2i.png" | grep -q "Denoising strength: 0.5"'
"$bin" generate -m "$model" -p "a red koala" -i "$dir/init.png" --mask "$dir/init.png" --strength 1 --steps 3 -q -o "$dir/inp.png" >/dev/null 2>&1
check "inpainting writes the image" '[ "$(size "$dir/inp.png")" = 96x64 ]'
"$bin" generate -m "$model" -p x --mask "$dir/init.png" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "--mask without --init-image is a usage error" '[ $rc -eq 2 ] && grep -q -- "--init-image" "$dir/err"'
for s in 0 1.5 abc; do
  "$bin" generate -m "$model" -p x -i "$dir/init.png" --strength $s -o "$dir/x.png" 2>/dev/null; rc=$?
  check "--strength $s is a usage error" '[ $rc -eq 2 ]'
done
"$bin" generate -m "$model" -p x -i "$dir/nowhere.png" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a missing init image is named" '[ $rc -eq 1 ] && grep -q nowhere.png "$dir/err"'
head -c 100 "$dir/init.png" > "$dir/cut.png"
"$bin" generate -m "$model" -p x -i "$dir/cut.png" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a truncated init image is an error naming it" '[ $rc -eq 1 ] && grep -q cut.png "$dir/err"'
"$bin" generate -m "$model" -p x -i "$dir/init.png" -W 64 -H 64 --steps 2 -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "an init image of another size is refused" '[ $rc -eq 1 ] && grep -q "96x64" "$dir/err" && [ ! -e "$dir/x.png" ]'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
