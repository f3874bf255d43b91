#!/usr/bin/env bash
# `leandiff distill --init-only`: the KOALA students of a tiny SDXL-layout
# teacher pipeline (koala-700m-tiny's components with sdxl-teacher-tiny's
# U-Net, as testdata/README.md describes) are pipelines `generate` runs; a
# teacher U-Net folder gives a U-Net folder; usage errors, an occupied --out,
# a student that does not fit and a truncated teacher file are refused with
# messages naming the problem.
set -u
bin="${LEANDIFF_BIN:?}"
. "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"
need_testdata models/sdxl-teacher-tiny/unet
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/distill_cli"
rm -rf "$dir"; mkdir -p "$dir/teacher"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }

for x in "$td/models/koala-700m-tiny"/*; do ln -s "$(cd "$(dirname "$x")" && pwd)/$(basename "$x")" "$dir/teacher/"; done
rm "$dir/teacher/unet"; ln -s "$(cd "$td/models/sdxl-teacher-tiny" && pwd)/unet" "$dir/teacher/unet"

for s in koala-700m koala-1b; do
  "$bin" distill --teacher "$dir/teacher" --student $s --out "$dir/$s" --init-only 2>"$dir/err"; rc=$?
  check "$s student written" '[ $rc -eq 0 ] && [ -f "$dir/$s/unet/config.json" ] && [ -f "$dir/$s/unet/diffusion_pytorch_model.safetensors" ] && [ -L "$dir/$s/vae" ] && [ -f "$dir/$s/model_index.json" ]'
  "$bin" generate -m "$dir/$s" -p "a koala" -W 64 -H 64 --steps 2 -q -o "$dir/$s.png" >/dev/null 2>&1
  check "generate runs the $s student" '[ -s "$dir/$s.png" ]'
done
check "koala-700m student has no mid block" 'grep -q "\"mid_block_type\": null" "$dir/koala-700m/unet/config.json" && ! "$bin" inspect "$dir/koala-700m/unet/diffusion_pytorch_model.safetensors" | grep -q mid_block'
check "koala-1b student keeps the mid block" '"$bin" inspect "$dir/koala-1b/unet/diffusion_pytorch_model.safetensors" | grep -q mid_block'
check "one layer per down block" '! "$bin" inspect "$dir/koala-1b/unet/diffusion_pytorch_model.safetensors" | grep -q "down_blocks.0.resnets.1"'

"$bin" distill --teacher "$td/models/sdxl-teacher-tiny/unet" --student koala-700m --out "$dir/unet-only" --init-only 2>/dev/null
check "a U-Net teacher gives a U-Net folder" '[ -f "$dir/unet-only/config.json" ] && [ -f "$dir/unet-only/diffusion_pytorch_model.safetensors" ] && cmp -s "$dir/unet-only/diffusion_pytorch_model.safetensors" "$dir/koala-700m/unet/diffusion_pytorch_model.safetensors"'

"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/koala-700m" --init-only 2>"$dir/err"; rc=$?
check "an occupied --out is refused" '[ $rc -eq 1 ] && grep -q "not empty" "$dir/err"'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/x" 2>"$dir/err"; rc=$?
check "without --init-only: usage error saying why" '[ $rc -eq 2 ] && grep -q "init-only" "$dir/err" && [ ! -e "$dir/x" ]'
"$bin" distill --teacher "$dir/teacher" --student koala-3b --out "$dir/x" --init-only 2>"$dir/err"; rc=$?
check "unknown student named" '[ $rc -eq 1 ] && grep -q "koala-3b" "$dir/err" && [ ! -e "$dir/x" ]'
"$bin" distill --teacher "$dir/nowhere" --student koala-700m --out "$dir/x" --init-only 2>"$dir/err"; rc=$?
check "missing teacher named" '[ $rc -eq 1 ] && grep -q "nowhere" "$dir/err"'
"$bin" distill --bogus 2>/dev/null; rc=$?
check "unknown flag is a usage error" '[ $rc -eq 2 ]'

sed 's/"layers_per_block": 1/"layers_per_block": 3/' "$dir/koala-1b/unet/config.json" > "$dir/grow.json"
"$bin" distill --teacher "$dir/teacher" --student "$dir/grow.json" --out "$dir/x" --init-only 2>"$dir/err"; rc=$?
check "a student with more layers than the teacher names the block" '[ $rc -eq 1 ] && grep -q "down_blocks.0" "$dir/err" && [ ! -e "$dir/x" ]'

mkdir -p "$dir/broken"; cp "$td/models/sdxl-teacher-tiny/unet/config.json" "$dir/broken/"
head -c 5000 "$td/models/sdxl-teacher-tiny/unet/diffusion_pytorch_model.safetensors" > "$dir/broken/diffusion_pytorch_model.safetensors"
"$bin" distill --teacher "$dir/broken" --student koala-700m --out "$dir/x" --init-only 2>"$dir/err"; rc=$?
check "a truncated teacher file is an error naming it" '[ $rc -eq 1 ] && grep -q "diffusion_pytorch_model.safetensors" "$dir/err" && [ ! -e "$dir/x/diffusion_pytorch_model.safetensors" ]'

# the distillation itself: a reference replay with the U-Net-folder teacher, then a tiny end-to-end run
"$bin" distill --teacher "$td/models/sdxl-teacher-tiny/unet" --replay "$td/train/distill-sdxl-teacher-tiny.safetensors" --dump "$dir/replay.safetensors" >/dev/null 2>"$dir/err"; rc=$?
check "distill --replay writes the dump" '[ $rc -eq 0 ] && "$bin" inspect "$dir/replay.safetensors" | grep -q "step2.feat_teacher.up_blocks.1.attentions.2.transformer_blocks.1.attn1" && "$bin" inspect "$dir/replay.safetensors" | grep -q "student_init.conv_in.weight"'
mkdir -p "$dir/data"
for i in 1 2 3; do
  "$bin" generate -m "$dir/teacher" -p "scene $i" --seed $i --steps 2 -q -o "$dir/data/s$i.png" >/dev/null 2>&1
  echo "a scene, number $i" > "$dir/data/s$i.txt"
done
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/distilled" --data "$dir/data" --resolution 64 \
    --steps 30 --lr 2e-3 --save-every 15 -q >/dev/null 2>"$dir/err"; rc=$?
check "end-to-end distillation runs" '[ $rc -eq 0 ] && [ -d "$dir/distilled/checkpoint-15" ] && head -1 "$dir/distilled/loss.csv" | grep -q "loss_task,loss_out,loss_feat"'
first=$(awk -F, 'NR>=2 && NR<=6 {s+=$2} END {print s/5}' "$dir/distilled/loss.csv")
last=$(awk -F, 'NR>=27 && NR<=31 {s+=$2} END {print s/5}' "$dir/distilled/loss.csv")
check "the distillation loss goes down ($first -> $last)" 'awk -v a="$first" -v b="$last" "BEGIN {exit !(b < a)}"'
"$bin" generate -m "$dir/distilled" -p "a scene" --steps 2 -q -o "$dir/distilled.png" >/dev/null 2>&1
check "generate runs the distilled student" '[ -s "$dir/distilled.png" ]'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/distilled-ff" --data "$dir/data" --resolution 64 \
    --steps 2 --distill-features ff -v -q >/dev/null 2>"$dir/err"; rc=$?
check "--distill-features ff pairs the feed-forward outputs" '[ $rc -eq 0 ] && grep -q "feature pairs (ff)" "$dir/err"'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/distilled-x" --data "$dir/data" --resolution 64 \
    --steps 2 --distill-features norm 2>"$dir/err"; rc=$?
check "an unknown feature kind is a usage error" '[ $rc -eq 2 ] && grep -q "distill-features" "$dir/err"'

echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
