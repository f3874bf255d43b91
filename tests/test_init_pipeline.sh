#!/usr/bin/env bash
# `init-random --pipeline tiny` writes a complete random-weight pipeline that
# `generate` runs end to end (the README's demo path); bad template names and
# flag combinations are refused.
set -u
bin="${LEANDIFF_BIN:?}"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/init_pipeline"
rm -rf "$dir"; mkdir -p "$dir"
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

"$bin" init-random --pipeline tiny --out "$dir/model" --seed 3 >/dev/null
check "pipeline folder written" '[ -f "$dir/model/model_index.json" ] && [ -f "$dir/model/unet/diffusion_pytorch_model.safetensors" ] && [ -f "$dir/model/tokenizer_2/vocab.json" ]'
"$bin" generate -m "$dir/model" -p "a koala" -W 64 -H 64 --steps 2 -q -o "$dir/out.png" >/dev/null
check "generate on it" '[ -s "$dir/out.png" ]'
check "metadata readable" '"$bin" info "$dir/out.png" | grep -q "Steps: 2"'
"$bin" init-random --pipeline nope --out "$dir/x" 2>"$dir/err"; rc=$?
check "unknown template refused" '[ $rc -eq 1 ] && grep -q "unknown pipeline template" "$dir/err"'
"$bin" init-random --pipeline tiny --config x.json --out "$dir/x" 2>/dev/null; rc=$?
check "--pipeline with --config is a usage error" '[ $rc -eq 2 ]'
if [ $fail = 0 ]; then echo "5 passed, 0 failed"; else echo "some checks failed"; fi
exit $fail
