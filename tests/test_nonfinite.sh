#!/usr/bin/env bash
# NaN and infinity are errors, not black images: a copy of a random tiny
# KOALA model (init-random) with one U-Net weight (then one VAE weight) set to NaN or infinity
# makes `generate` fail naming the stage and step, write nothing, and (with
# --precision bf16) suggest f32.
set -u
bin="${LEANDIFF_BIN:?}"
. "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/nonfinite"
rm -rf "$dir"; mkdir -p "$dir"
make_tiny_model "$dir/tiny"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }

# poison FILE TENSOR nan|inf: set the first element of a tensor (F32/F16/BF16) in place
poison() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
path, name, what = sys.argv[1:]
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    f.seek(8 + n + t["data_offsets"][0])
    bits = {"F32": {"nan": b"\x00\x00\xc0\x7f", "inf": b"\x00\x00\x80\x7f"},
            "F16": {"nan": b"\x00\x7e", "inf": b"\x00\x7c"},
            "BF16": {"nan": b"\xc0\x7f", "inf": b"\x80\x7f"}}[t["dtype"]][what]
    f.write(bits)
PY
}

fresh() { rm -rf "$dir/m"; cp -rL "$dir/tiny" "$dir/m"; }
gen() { "$bin" generate -m "$dir/m" -p "a koala" -W 64 -H 64 --steps 3 -q -o "$dir/out.png" "$@" 2>"$dir/err"; }

fresh; poison "$dir/m/unet/diffusion_pytorch_model.safetensors" conv_in.bias nan
gen; rc=$?
check "NaN in the U-Net: an error naming the stage and step" '[ $rc -eq 1 ] && grep -q "unet produced NaN at step 1 of 3: check the weights" "$dir/err"'
check "  and no image written" '[ ! -e "$dir/out.png" ]'
gen --precision bf16; rc=$?
check "with bf16 it suggests f32" '[ $rc -eq 1 ] && grep -q -- "--precision f32" "$dir/err"'

fresh; poison "$dir/m/unet/diffusion_pytorch_model.safetensors" conv_out.bias inf
gen; rc=$?
# (guidance turns inf - inf into NaN, so either word may come first)
check "infinity in the U-Net is an error too" '[ $rc -eq 1 ] && grep -Eq "unet produced (NaN|infinity) at step 1" "$dir/err" && [ ! -e "$dir/out.png" ]'

fresh; poison "$dir/m/vae/diffusion_pytorch_model.safetensors" decoder.conv_out.bias nan
gen; rc=$?
check "NaN in the VAE: an error about the image" '[ $rc -eq 1 ] && grep -q "vae produced NaN in the image" "$dir/err" && [ ! -e "$dir/out.png" ]'

fresh
gen; rc=$?
check "the clean copy still works" '[ $rc -eq 0 ] && [ -s "$dir/out.png" ]'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
