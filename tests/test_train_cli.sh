#!/usr/bin/env bash
# `leandiff train` on the tiny KOALA pipeline: full fine-tuning writes a
# U-Net folder that generate runs and that changes the image; a run resumed
# from its checkpoint ends with the same weights, bit for bit, as the run
# that went through; LoRA files follow the peft/diffusers and kohya key
# layouts, with 4-D convolution adapters under --lora-conv-rank (LoCon) that
# change the image and resume exactly; both dataset layouts load, bad entries are reported by file (and
# line) and skipped, or stop the run with --on-bad error; usage errors are
# refused; --replay writes the dump.
set -u
bin="${LEANDIFF_BIN:?}"
. "${LEANDIFF_SOURCE_DIR:?}/tests/lib/testdata.bash"
need_testdata models/koala-700m-tiny/unet
model="$td/models/koala-700m-tiny"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/train_cli"
rm -rf "$dir"; mkdir -p "$dir/data" "$dir/hf/imgs"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }

for i in 1 2 3 4; do
  "$bin" generate -m "$model" -p "picture $i" --seed $i --steps 2 -q -o "$dir/data/img$i.png" >/dev/null 2>&1
  echo "a photo of sks toy, view $i" > "$dir/data/img$i.txt"
done
cp "$dir/data/img1.png" "$dir/data/nocaption.png"              # no caption: skipped
head -c 100 "$dir/data/img2.png" > "$dir/data/broken.png"; echo "broken" > "$dir/data/broken.txt"
common=(-m "$model" --data "$dir/data" --resolution 64 --lr 1e-3 --flip --caption-dropout 0.2 -q)

"$bin" train "${common[@]}" --out "$dir/full" --steps 6 --save-every 3 2>"$dir/err"; rc=$?
check "full fine-tuning runs" '[ $rc -eq 0 ] && [ -f "$dir/full/unet/diffusion_pytorch_model.safetensors" ] && [ -f "$dir/full/unet/config.json" ]'
check "bad entries are named and skipped" 'grep -q "nocaption.png: no caption" "$dir/err" && grep -q "broken.png" "$dir/err"'
check "checkpoint, loss.csv and loss.png" '[ -d "$dir/full/checkpoint-3" ] && [ $(wc -l < "$dir/full/loss.csv") -eq 7 ] && head -c 8 "$dir/full/loss.png" | od -c | grep -q "P   N   G"'
check "no partial checkpoint left" '! ls -a "$dir/full" | grep -q partial'

"$bin" train "${common[@]}" --out "$dir/resumed" --steps 6 --resume "$dir/full/checkpoint-3" 2>"$dir/err"; rc=$?
check "resume from a checkpoint ends with the same weights" '[ $rc -eq 0 ] && cmp -s "$dir/full/unet/diffusion_pytorch_model.safetensors" "$dir/resumed/unet/diffusion_pytorch_model.safetensors"'
"$bin" train "${common[@]}" --out "$dir/bad-resume" --steps 6 --seed 9 --resume "$dir/full/checkpoint-3" 2>"$dir/err"; rc=$?
check "resume with other settings is refused" '[ $rc -ne 0 ] && grep -q "made with --seed 0" "$dir/err"'

mkdir -p "$dir/ft"; for x in "$model"/*; do ln -s "$(cd "$(dirname "$x")" && pwd)/$(basename "$x")" "$dir/ft/"; done
rm "$dir/ft/unet"; ln -s "$(cd "$dir/full" && pwd)/unet" "$dir/ft/unet"
"$bin" generate -m "$model" -p "a photo of sks toy" --seed 3 --steps 3 -q -o "$dir/base.png" >/dev/null 2>&1
"$bin" generate -m "$dir/ft" -p "a photo of sks toy" --seed 3 --steps 3 -q -o "$dir/tuned.png" >/dev/null 2>&1
check "the fine-tuned U-Net changes the image" '[ -s "$dir/tuned.png" ] && ! cmp -s "$dir/base.png" "$dir/tuned.png"'

"$bin" train "${common[@]}" --out "$dir/lora" --steps 4 --lora 4 --lora-alpha 8 2>/dev/null; rc=$?
check "LoRA in the peft/diffusers layout" '[ $rc -eq 0 ] && "$bin" inspect "$dir/lora/pytorch_lora_weights.safetensors" | grep -q "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight" && ! [ -d "$dir/lora/unet" ]'
"$bin" train "${common[@]}" --out "$dir/lora-all" --steps 2 --lora 4 --lora-targets all --lora-format kohya 2>/dev/null; rc=$?
check "--lora-targets all adapts the feed-forward and projections too (kohya's set)" '[ $rc -eq 0 ] && "$bin" inspect "$dir/lora-all/lora_kohya.safetensors" > "$dir/keys" && grep -q "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj.lora_down" "$dir/keys" && grep -q "lora_unet_up_blocks_0_attentions_1_proj_out.lora_up" "$dir/keys"'
"$bin" generate -m "$model" -p "a photo of sks toy" --seed 3 --steps 3 -q --no-metadata --lora "$dir/lora-all/lora_kohya.safetensors" -o "$dir/all.png" >/dev/null 2>&1
check "generate merges it" '[ -s "$dir/all.png" ]'
"$bin" train "${common[@]}" --out "$dir/kohya" --steps 4 --lora 4 --lora-format kohya 2>/dev/null; rc=$?
check "LoRA in the kohya layout" '[ $rc -eq 0 ] && "$bin" inspect "$dir/kohya/lora_kohya.safetensors" | grep -q "lora_unet_up_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0.alpha"'

gen=(generate -m "$model" --seed 3 --steps 3 -q --no-metadata)
"$bin" "${gen[@]}" -p "a photo of sks toy" -o "$dir/nolora.png" >/dev/null 2>&1
"$bin" "${gen[@]}" -p "a photo of sks toy" --lora "$dir/lora/pytorch_lora_weights.safetensors" -o "$dir/withlora.png" >/dev/null 2>&1
check "the trained LoRA changes its trigger prompt's image" '[ -s "$dir/withlora.png" ] && ! cmp -s "$dir/nolora.png" "$dir/withlora.png"'
"$bin" "${gen[@]}" -p "a photo of sks toy" --lora "$dir/lora/pytorch_lora_weights.safetensors:0" -o "$dir/lora0.png" >/dev/null 2>&1
check "strength 0 leaves the image as it was" 'cmp -s "$dir/nolora.png" "$dir/lora0.png"'

# LoCon: --lora-conv-rank adds 4-D adapters on the ResNets' and samplers' convolutions
"$bin" train "${common[@]}" --out "$dir/locon" --steps 4 --save-every 2 --lora 4 --lora-conv-rank 2 --lora-conv-alpha 4 2>/dev/null; rc=$?
# keys: prints "name shape" per tensor and "meta k=v" of a safetensors file (its JSON header)
keys() { python3 - "$1" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
for k, v in sorted(h.items()):
    print(f"meta {'='.join(f'{a}={b}' for a, b in v.items())}" if k == "__metadata__" else f"{k} {v['shape']}")
PY
}
keys "$dir/locon/pytorch_lora_weights.safetensors" > "$dir/locon.keys"
check "--lora-conv-rank: peft keys with 4-D A [r, in, kh, kw] and B [out, r, 1, 1] on conv1/conv2 and the samplers" '[ $rc -eq 0 ] &&
  grep -qx "unet.down_blocks.0.resnets.0.conv1.lora_A.weight \[2, 32, 3, 3\]" "$dir/locon.keys" &&
  grep -qx "unet.down_blocks.0.resnets.0.conv1.lora_B.weight \[32, 2, 1, 1\]" "$dir/locon.keys" &&
  grep -qx "unet.up_blocks.2.resnets.1.conv2.lora_A.weight \[2, 32, 3, 3\]" "$dir/locon.keys" &&
  grep -qx "unet.down_blocks.1.downsamplers.0.conv.lora_A.weight \[2, 64, 3, 3\]" "$dir/locon.keys" &&
  grep -qx "unet.up_blocks.0.upsamplers.0.conv.lora_B.weight \[96, 2, 1, 1\]" "$dir/locon.keys"'
check "--lora-conv-rank: conv_shortcut (1x1, 4-D) and time_emb_proj (2-D) at the --lora rank; conv_in, conv_out untouched" '
  grep -qx "unet.down_blocks.1.resnets.0.conv_shortcut.lora_A.weight \[4, 32, 1, 1\]" "$dir/locon.keys" &&
  grep -qx "unet.down_blocks.1.resnets.0.time_emb_proj.lora_A.weight \[4, 128\]" "$dir/locon.keys" &&
  ! grep -q "conv_in\|conv_out" "$dir/locon.keys" && grep -q "lora_conv_rank=2" "$dir/locon.keys" &&
  [ $(grep -c "resnets.*lora_A\|samplers.*lora_A" "$dir/locon.keys") -eq 39 ]'
keys "$dir/lora/pytorch_lora_weights.safetensors" > "$dir/lora.keys"
check "without --lora-conv-rank the file has no convolution (nor ResNet) keys" '[ -s "$dir/lora.keys" ] && ! grep -q "resnets\|samplers\|conv" "$dir/lora.keys"'
# the conv adapters alone (the attention ones dropped) change the image: they trained and merge
python3 - "$dir/locon/pytorch_lora_weights.safetensors" "$dir/conv_only.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
out, keep, off = {}, [], 0
for k, v in sorted(h.items()):
    if k != "__metadata__" and ("resnets" in k or "samplers" in k):
        a, b = v["data_offsets"]; keep.append(data[a:b])
        out[k] = dict(v, data_offsets=[off, off + b - a]); off += b - a
hdr = json.dumps(out).encode(); hdr += b" " * (-len(hdr) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hdr)) + hdr + b"".join(keep))
PY
gen=(generate -m "$model" --seed 3 --steps 3 -q --no-metadata)
"$bin" "${gen[@]}" -p "a photo of sks toy" -o "$dir/base3.png" >/dev/null 2>&1
"$bin" "${gen[@]}" -v -p "a photo of sks toy" --lora "$dir/conv_only.safetensors" -o "$dir/conv_only.png" 2>"$dir/err" >/dev/null; rc=$?
check "the trained conv adapters alone change the image" '[ $rc -eq 0 ] && grep -q "39 layers" "$dir/err" && [ -s "$dir/conv_only.png" ] && ! cmp -s "$dir/base3.png" "$dir/conv_only.png"'
"$bin" train "${common[@]}" --out "$dir/locon-kohya" --steps 4 --lora 4 --lora-conv-rank 2 --lora-conv-alpha 4 --lora-format kohya 2>/dev/null; rc=$?
keys "$dir/locon-kohya/lora_kohya.safetensors" > "$dir/locon-kohya.keys"
check "--lora-conv-rank --lora-format kohya: 4-D lora_down/lora_up and the conv alpha" '[ $rc -eq 0 ] &&
  grep -qx "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight \[2, 32, 3, 3\]" "$dir/locon-kohya.keys" &&
  grep -qx "lora_unet_down_blocks_0_downsamplers_0_conv.lora_up.weight \[32, 2, 1, 1\]" "$dir/locon-kohya.keys" &&
  grep -qx "lora_unet_down_blocks_0_resnets_0_conv1.alpha \[\]" "$dir/locon-kohya.keys"'
"$bin" "${gen[@]}" -p "a photo of sks toy" --lora "$dir/locon/pytorch_lora_weights.safetensors" -o "$dir/locon-peft.png" >/dev/null 2>&1
"$bin" "${gen[@]}" -p "a photo of sks toy" --lora "$dir/locon-kohya/lora_kohya.safetensors" -o "$dir/locon-kohya.png" >/dev/null 2>&1
check "the same LoCon run saved in both layouts gives the same image" '[ -s "$dir/locon-peft.png" ] && cmp -s "$dir/locon-peft.png" "$dir/locon-kohya.png" && ! cmp -s "$dir/base3.png" "$dir/locon-peft.png"'
"$bin" train "${common[@]}" --out "$dir/locon-resumed" --steps 4 --lora 4 --lora-conv-rank 2 --lora-conv-alpha 4 --resume "$dir/locon/checkpoint-2" 2>/dev/null; rc=$?
check "LoCon: a resumed run ends with the same adapters" '[ $rc -eq 0 ] && cmp -s "$dir/locon/pytorch_lora_weights.safetensors" "$dir/locon-resumed/pytorch_lora_weights.safetensors"'
"$bin" train "${common[@]}" --out "$dir/locon-bad" --steps 4 --lora 4 --resume "$dir/locon/checkpoint-2" 2>"$dir/err"; rc=$?
check "resuming a LoCon checkpoint without --lora-conv-rank is refused" '[ $rc -ne 0 ] && grep -q "lora-conv-rank 2" "$dir/err"'
"$bin" train "${common[@]}" --out "$dir/x" --lora-conv-rank 2 2>"$dir/err"; rc=$?
check "--lora-conv-rank without --lora is a usage error" '[ $rc -eq 2 ] && grep -q "lora-conv-rank needs --lora" "$dir/err"'
"$bin" train "${common[@]}" --out "$dir/x" --lora 4 --lora-conv-alpha 2 2>"$dir/err"; rc=$?
check "--lora-conv-alpha without --lora-conv-rank is a usage error" '[ $rc -eq 2 ] && grep -q "needs --lora-conv-rank" "$dir/err"'

mkdir -p "$dir/loras"; cp "$dir/kohya/lora_kohya.safetensors" "$dir/loras/toy.safetensors"
"$bin" "${gen[@]}" -p "a photo of sks toy <lora:toy:0.7>" --lora-dir "$dir/loras" -o "$dir/tag.png" >/dev/null 2>&1
"$bin" "${gen[@]}" -p "a photo of sks toy" --lora "$dir/loras/toy.safetensors:0.7" -o "$dir/flag.png" >/dev/null 2>&1
check "a <lora:NAME:SCALE> tag equals --lora FILE:SCALE" '[ -s "$dir/tag.png" ] && cmp -s "$dir/tag.png" "$dir/flag.png"'
"$bin" "${gen[@]}" -p "x <lora:missing>" --lora-dir "$dir/loras" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a tag naming no file is an error naming it" '[ $rc -ne 0 ] && grep -q "missing.safetensors not found" "$dir/err"'
"$bin" "${gen[@]}" -p "x" --lora "$dir/data/img1.txt" -o "$dir/x.png" 2>"$dir/err"; rc=$?
check "a file that is not a LoRA is refused" '[ $rc -ne 0 ] && grep -q "img1.txt" "$dir/err"'

cp "$dir/data/img1.png" "$dir/data/img2.png" "$dir/hf/imgs/"
printf '{"file_name": "imgs/img1.png", "text": "first"}\nnot json\n{"file_name": "../escape.png", "text": "x"}\n{"file_name": "imgs/img2.png", "text": "second"}\n' > "$dir/hf/metadata.jsonl"
"$bin" train "${common[@]}" --data "$dir/hf" --out "$dir/hfout" --steps 2 2>"$dir/err"; rc=$?
check "metadata.jsonl dataset, bad lines named" '[ $rc -eq 0 ] && grep -q "metadata.jsonl:2: not JSON" "$dir/err" && grep -q "metadata.jsonl:3: file_name" "$dir/err"'
"$bin" train "${common[@]}" --data "$dir/hf" --out "$dir/hfstrict" --steps 2 --on-bad error 2>"$dir/err"; rc=$?
check "--on-bad error stops at the first bad line" '[ $rc -ne 0 ] && grep -q "metadata.jsonl:2" "$dir/err"'

"$bin" train -m "$model" --out "$dir/x" 2>/dev/null; rc=$?
check "--data is required" '[ $rc -eq 2 ]'
"$bin" train "${common[@]}" --out "$dir/x" --lr-schedule sometimes 2>"$dir/err"; rc=$?
check "a bad --lr-schedule is named" '[ $rc -eq 2 ] && grep -q "lr-schedule" "$dir/err"'
"$bin" train -m "$model" --data "$dir/nowhere" --out "$dir/x" 2>"$dir/err"; rc=$?
check "a missing dataset folder is named" '[ $rc -eq 1 ] && grep -q "nowhere" "$dir/err"'

"$bin" train -m "$model" --replay "$td/train/koala-700m-tiny.safetensors" --dump "$dir/dump.safetensors" -q; rc=$?
check "--replay writes the dump" '[ $rc -eq 0 ] && "$bin" inspect "$dir/dump.safetensors" | grep -q "grad.conv_in.weight"'

# aspect-ratio buckets: wide, tall and square pictures train in batches of one bucket each
mkdir -p "$dir/mixed"
for i in 1 2 3; do
  "$bin" generate -m "$model" -p "wide $i" --seed $i --steps 2 -W 192 -H 128 -q -o "$dir/mixed/w$i.png" >/dev/null 2>&1
  "$bin" generate -m "$model" -p "tall $i" --seed $i --steps 2 -W 128 -H 192 -q -o "$dir/mixed/t$i.png" >/dev/null 2>&1
  echo "a wide scene $i" > "$dir/mixed/w$i.txt"; echo "a tall scene $i" > "$dir/mixed/t$i.txt"
done
for i in 1 2; do
  "$bin" generate -m "$model" -p "square $i" --seed $i --steps 2 -W 128 -H 128 -q -o "$dir/mixed/s$i.png" >/dev/null 2>&1
  echo "a square scene $i" > "$dir/mixed/s$i.txt"
done
bucket=(-m "$model" --data "$dir/mixed" --resolution 128 --bucket --bucket-step 32 --batch 2 --lr 1e-3 --flip -q)
"$bin" train "${bucket[@]}" --out "$dir/bucket" --steps 6 --save-every 3 -v 2>"$dir/err"; rc=$?
check "--bucket: wide, tall and square pictures in their kohya buckets" '[ $rc -eq 0 ] && grep -q "bucket 160x96: 3 images" "$dir/err" && grep -q "bucket 96x160: 3 images" "$dir/err" && grep -q "bucket 128x128: 2 images" "$dir/err" && grep -q "8 images in 3 buckets" "$dir/err"'
"$bin" train "${bucket[@]}" --out "$dir/bucket-epoch" --steps 5 -vv 2>"$dir/err"
# an epoch of 8 images at batch 2 in buckets of 3, 3 and 2 is 5 micro-batches: each image once, one size each
check "--bucket: an epoch holds every image once, each micro-batch one bucket" 'python3 - "$dir/err" <<PY
import re, sys
rows = [l for l in open(sys.argv[1]) if "micro-batch" in l]
items = [int(x) for l in rows for x in l.split("items")[1].split()]
sizes = {"96x160": 3, "160x96": 3, "128x128": 2}
ok = len(rows) == 5 and sorted(items) == list(range(8))
for l in rows:
    m = re.search(r"(\d+) of latent size (\d+)x(\d+)", l)
    ok = ok and m and int(m.group(1)) <= 2 and f"{int(m.group(2)) * 8}x{int(m.group(3)) * 8}" in sizes
sys.exit(0 if ok else 1)
PY'
"$bin" train "${bucket[@]}" --out "$dir/bucket-resumed" --steps 6 --resume "$dir/bucket/checkpoint-3" 2>/dev/null; rc=$?
check "--bucket: a resumed run ends with the same weights" '[ $rc -eq 0 ] && cmp -s "$dir/bucket/unet/diffusion_pytorch_model.safetensors" "$dir/bucket-resumed/unet/diffusion_pytorch_model.safetensors"'
"$bin" train "${common[@]}" --out "$dir/x" --lora-targets all 2>"$dir/err"; rc=$?
check "--lora-targets without --lora is a usage error" '[ $rc -eq 2 ] && grep -q "needs --lora" "$dir/err"'
"$bin" train "${bucket[@]}" --out "$dir/bucket-big" --steps 1 --bucket-min 256 2>"$dir/err"; rc=$?
check "--bucket-min above --resolution is refused, naming both" '[ $rc -ne 0 ] && grep -q "bucket-min 256 <= --resolution 128" "$dir/err"'
"$bin" train "${bucket[@]}" --out "$dir/bucket-bad" --steps 1 --bucket-step 20 2>"$dir/err"; rc=$?
check "--bucket-step that is not a multiple of the VAE factor is refused" '[ $rc -ne 0 ] && grep -q "bucket-step 20" "$dir/err"'

echo "$((n - fail)) passed, $fail failed"
[ $fail -eq 0 ]
