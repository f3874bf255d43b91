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
for f in ff:6 attn1-all:12 blocks:6; do
  "$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/distilled-${f%:*}" --data "$dir/data" \
      --resolution 64 --steps 2 --distill-features ${f%:*} -v -q >/dev/null 2>"$dir/err"; rc=$?
  check "--distill-features ${f%:*}: ${f#*:} pairs, a feature loss" '[ $rc -eq 0 ] && grep -q "${f#*:} feature pairs (${f%:*})" "$dir/err" && awk -F, "NR==2 {exit !(\$5 > 0)}" "$dir/distilled-${f%:*}/loss.csv"'
done
# the teacher in bf16 next to an f32 student: step 1's task loss (the student's alone) is unchanged,
# the output loss moves by bf16 rounding only
for p in f32 bf16; do
  "$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/tp-$p" --data "$dir/data" --resolution 64 \
      --steps 1 --teacher-precision $p -q >/dev/null 2>"$dir/err"
done
t32=$(awk -F, 'NR==2 {print $3, $4}' "$dir/tp-f32/loss.csv"); t16=$(awk -F, 'NR==2 {print $3, $4}' "$dir/tp-bf16/loss.csv")
check "--teacher-precision bf16: same task loss, output loss within bf16 rounding ($t32 / $t16)" 'awk -v a="$t32" -v b="$t16" "BEGIN {split(a, x, \" \"); split(b, y, \" \"); d = (x[2] - y[2]) / x[2]; exit !(x[1] == y[1] && x[2] != y[2] && d < 0.05 && d > -0.05)}"'
"$bin" train -m "$dir/teacher" --data "$dir/data" --out "$dir/x" --teacher-precision bf16 2>"$dir/err"; rc=$?
check "--teacher-precision without --teacher is refused" '[ $rc -ne 0 ] && grep -q "needs --teacher" "$dir/err"'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/distilled-x" --data "$dir/data" --resolution 64 \
    --steps 2 --distill-features norm 2>"$dir/err"; rc=$?
check "an unknown feature kind is a usage error" '[ $rc -eq 2 ] && grep -q "distill-features" "$dir/err"'

# data-free distillation: the teacher pipeline makes the latents of a prompts file
printf '# prompts for the tiny teacher\na red koala\n\r\n\xff\xfe not text\na koala reading a book\r\nblue trees\n' > "$dir/prompts.txt"
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/free" --prompts "$dir/prompts.txt" \
    --resolution 64 --gen-steps 2 --steps 4 --save-every 2 --lr 1e-3 -v -q >/dev/null 2>"$dir/err"; rc=$?
check "data-free distillation runs on 3 prompts" '[ $rc -eq 0 ] && grep -q "3 prompts (1 skipped)" "$dir/err" && grep -q "prompts.txt line 4: text: invalid UTF-8" "$dir/err" && [ -f "$dir/free/unet/diffusion_pytorch_model.safetensors" ]'
"$bin" inspect "$dir/free/teacher_latents.safetensors" > "$dir/inspect" 2>&1
check "the teacher's latents are kept" 'grep -q "\[3, 4, 8, 8\] *latents" "$dir/inspect"'
seed=$(sed -n 's/.*teacher latents 2\/3: seed \([0-9]*\), "a koala reading a book".*/\1/p' "$dir/err")
"$bin" generate -m "$dir/teacher" -p "a koala reading a book" --seed "$seed" --steps 2 -W 64 -H 64 --prompt-syntax plain \
    -q -o "$dir/free.png" --dump "$dir/free-dump.safetensors" >/dev/null 2>&1
check "they are the teacher's own generation of each prompt" '[ -n "$seed" ] && python3 - "$dir/free/teacher_latents.safetensors" "$dir/free-dump.safetensors" <<PY
import json, struct, sys
def tensor(path, name):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    o = h[name]["data_offsets"]; return b[8 + n + o[0]:8 + n + o[1]]
a = tensor(sys.argv[1], "latents"); per = len(a) // 3
sys.exit(0 if a[per:2 * per] == tensor(sys.argv[2], "final_latents") else 1)
PY'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/free" --prompts "$dir/prompts.txt" \
    --resolution 64 --gen-steps 2 --steps 4 --save-every 2 --lr 1e-3 -v -q --resume "$dir/free/checkpoint-2" >/dev/null 2>"$dir/err"; rc=$?
check "a resumed run reads them instead of sampling again" '[ $rc -eq 0 ] && grep -q "teacher latents read from" "$dir/err" && ! grep -q "teacher latents 1/3" "$dir/err"'
"$bin" train -m "$dir/teacher" --prompts "$dir/prompts.txt" --out "$dir/x" 2>"$dir/err"; rc=$?
check "--prompts without --teacher is refused" '[ $rc -ne 0 ] && grep -q "needs --teacher" "$dir/err"'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/free-flip" --prompts "$dir/prompts.txt" \
    --resolution 64 --flip 2>"$dir/err"; rc=$?
check "--flip with --prompts is refused" '[ $rc -ne 0 ] && grep -q "not to --prompts" "$dir/err"'
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/free-bucket" --prompts "$dir/prompts.txt" \
    --resolution 64 --bucket 2>"$dir/err"; rc=$?
check "--bucket with --prompts is refused" '[ $rc -ne 0 ] && grep -q "bucket applies to images" "$dir/err"'
printf '\n# nothing\n' > "$dir/empty.txt"
"$bin" distill --teacher "$dir/teacher" --student koala-700m --out "$dir/free-empty" --prompts "$dir/empty.txt" 2>"$dir/err"; rc=$?
check "a prompts file without prompts is an error naming it" '[ $rc -ne 0 ] && grep -q "empty.txt: no prompt" "$dir/err"'

echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
