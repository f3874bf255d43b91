#!/usr/bin/env bash
# `generate -i INIT.png --strength S [--mask MASK.png] [--mask-blur PX]` on
# a random tiny KOALA model (init-random): the PNG is written with the strength and mask blur in
# its infotext; images of another size are resized to -W/-H (or their own
# size rounded down to 8); a 9-channel inpainting U-Net folder works and
# refuses text-to-image; bad flags and files are refused before any work.
# (The numbers are test_img2img's and test_image_prep's job.)
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
"$bin" generate -m "$model" -p x -i "$dir/init.png" -W 64 -H 48 --steps 2 -q -o "$dir/x.png" >/dev/null 2>&1
check "an init image of another size is resized to -W/-H" '[ "$(size "$dir/x.png")" = 64x48 ]'
"$bin" generate -m "$model" -p "a koala" -W 104 -H 72 --steps 2 -q -o "$dir/big.png" >/dev/null 2>&1
"$bin" generate -m "$model" -p x -i "$dir/big.png" -W 101 -H 67 --steps 2 -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "-W/-H not multiples of 8 are refused" '[ $rc -eq 1 ] && grep -q "multiples of 8" "$dir/err"'
"$bin" generate -m "$model" -p "a koala" -i "$dir/big.png" --mask "$dir/init.png" --mask-blur 4 --strength 0.6 --steps 3 -q -o "$dir/own.png" >/dev/null 2>"$dir/err"
check "inpainting with a mask of another size and --mask-blur" '[ "$(size "$dir/own.png")" = 104x72 ]'
"$bin" info "$dir/own.png" | grep -q "Mask blur: 4"; check "infotext has the mask blur" '[ $? -eq 0 ]'
for b in -1 abc 2000; do
  "$bin" generate -m "$model" -p x -i "$dir/init.png" --mask "$dir/init.png" --mask-blur $b -o "$dir/x.png" 2>/dev/null; rc=$?
  check "--mask-blur $b is a usage error" '[ $rc -eq 2 ]'
done
"$bin" generate -m "$model" -p x -i "$dir/init.png" --mask-blur 4 -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "--mask-blur without --mask is a usage error" '[ $rc -eq 2 ] && grep -q -- "--mask" "$dir/err"'
# a 9-channel inpainting U-Net (tests/data/inpaint9) with koala-700m-tiny's other parts
m9="$dir/inpaint9"; mkdir -p "$m9"
for c in text_encoder text_encoder_2 tokenizer tokenizer_2 vae scheduler; do ln -s "$model/$c" "$m9/$c"; done
"$bin" init-random --config "${LEANDIFF_SOURCE_DIR:?}/tests/data/inpaint9/unet_config.json" --out "$m9/unet" --seed 9 >/dev/null
sed 's/"StableDiffusionXLPipeline"/"StableDiffusionXLInpaintPipeline"/' "$model/model_index.json" > "$m9/model_index.json"
"$bin" generate -m "$m9" -p "a red koala" -i "$dir/big.png" --mask "$dir/init.png" --strength 0.8 --steps 3 -q -o "$dir/nine.png" >/dev/null 2>"$dir/err"
check "a 9-channel inpainting model writes the image" '[ "$(size "$dir/nine.png")" = 104x72 ]'
"$bin" generate -m "$m9" -p x --steps 2 -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a 9-channel model without -i/--mask is refused" '[ $rc -eq 1 ] && grep -q "give an init image and a mask" "$dir/err"'
sed 's/"force_zeros_for_empty_prompt"/"requires_aesthetics_score": true, "force_zeros_for_empty_prompt"/' "$model/model_index.json" > "$dir/mi.json"
mv "$dir/mi.json" "$m9/model_index.json"
"$bin" generate -m "$m9" -p x -i "$dir/big.png" --mask "$dir/init.png" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "requires_aesthetics_score is refused by name" '[ $rc -eq 1 ] && grep -q requires_aesthetics_score "$dir/err"'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
