#!/usr/bin/env bash
# The infotext reproduces the image (issue 16, point 4), through `leandiff
# generate` and `leandiff info` on a random tiny KOALA pipeline (init-random):
#  - precision, timestep spacing, an explicit empty negative prompt (a line of
#    its own) versus none (no line), and the replay file instead of a seed;
#  - replaying an image's own noise file gives the same pixels;
#  - KOALA-Lightning defaults come from the model's files: a symlink named
#    my-Lightning-copy keeps the KOALA defaults, a model card titled
#    KOALA-Lightning switches them; -v says which apply and why;
#  - a prompt cut at 75 tokens by --prompt-syntax plain says so.
set -u
bin="${LEANDIFF_BIN:?}"
dir="${LEANDIFF_BUILD_DIR:-/tmp}/test-tmp/infotext_cli"
rm -rf "$dir"; mkdir -p "$dir"
fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=$((fail + 1)); fi; }
"$bin" init-random --pipeline tiny --out "$dir/m" >/dev/null || { echo "FAIL: init-random"; exit 1; }
gen() { "$bin" generate -p "a koala" -W 64 -H 64 --steps 2 -q "$@"; }
params() { "$bin" info "$1" 2>&1; }

gen -m "$dir/m" -o "$dir/none.png" >/dev/null 2>&1
gen -m "$dir/m" -n "" -o "$dir/empty.png" >/dev/null 2>&1
gen -m "$dir/m" --precision bf16 --dump "$dir/bf16.dump.safetensors" -o "$dir/bf16.png" >/dev/null 2>&1
p_none=$(params "$dir/none.png"); p_empty=$(params "$dir/empty.png"); p_bf16=$(params "$dir/bf16.png")
echo "no negative: $p_none"
check "no negative prompt: no Negative line" '! grep -q "^Negative prompt:" <<<"$p_none"'
check "an explicit empty negative prompt: an empty Negative line" 'grep -qx "Negative prompt: " <<<"$p_empty"'
check "  (they are different images)" '! cmp -s "$dir/none.png" "$dir/empty.png"'
check "precision and timestep spacing recorded" \
    'grep -q "Timestep spacing: leading, Precision: f32, RNG: NV" <<<"$p_none" && grep -q "Precision: bf16" <<<"$p_bf16"'

gen -m "$dir/m" --precision bf16 --replay-noise "$dir/bf16.dump.safetensors" -s 999 -o "$dir/replay.png" \
    >"$dir/replay.out" 2>&1
p_replay=$(params "$dir/replay.png")
echo "replay: $p_replay"
check "a replay records the noise file, not a seed that was never drawn" \
    'grep -q "Noise file: $dir/bf16.dump.safetensors" <<<"$p_replay" && ! grep -q "Seed:" <<<"$p_replay" && grep -q "noise from" "$dir/replay.out"'
check "  and replaying an image's own noise gives its pixels" \
    'python3 - "$dir/bf16.png" "$dir/replay.png" <<PY
import struct, sys, zlib
def pixels(path):
    d = open(path, "rb").read()[8:]; idat = b""
    while d:
        n, t = struct.unpack(">I4s", d[:8]); c = d[8:8 + n]; d = d[12 + n:]
        if t == b"IDAT": idat += c
    return zlib.decompress(idat)
sys.exit(0 if pixels(sys.argv[1]) == pixels(sys.argv[2]) else 1)
PY'

# Lightning defaults from the model's files, not the folder's name
ln -s "$dir/m" "$dir/my-Lightning-copy"
"$bin" generate -m "$dir/my-Lightning-copy" -p "a koala" -W 64 -H 64 -q -v -o "$dir/copy.png" >/dev/null 2>"$dir/copy.err"
check "a symlink named my-Lightning-copy keeps the KOALA defaults (-v says why)" \
    'grep -q "KOALA defaults (25 steps, CFG 7.5" "$dir/copy.err" && grep -q "Steps: 25, Sampler: Euler, CFG scale: 7.5" <<<"$(params "$dir/copy.png")"'
mkdir "$dir/card"
for f in "$dir"/m/*; do ln -s "$f" "$dir/card/$(basename "$f")"; done
printf -- '---\nlicense: other\n---\n# KOALA-Lightning-700M Model Card\n' >"$dir/card/README.md"
"$bin" generate -m "$dir/card" -p "a koala" -W 64 -H 64 -q -v -o "$dir/card.png" >/dev/null 2>"$dir/card.err"
p_card=$(params "$dir/card.png")
check "a model card titled KOALA-Lightning switches to 10 steps, CFG 3.5, trailing (-v says so)" \
    'grep -q "KOALA-Lightning defaults.*README.md title" "$dir/card.err" && grep -q "Steps: 10, Sampler: Euler, CFG scale: 3.5" <<<"$p_card" && grep -q "Timestep spacing: trailing" <<<"$p_card"'
"$bin" generate -m "$dir/card" -p "a koala" -W 64 -H 64 --steps 3 --cfg-scale 5 -q -o "$dir/card2.png" >/dev/null 2>&1
check "  --steps and --cfg-scale still override them" 'grep -q "Steps: 3, Sampler: Euler, CFG scale: 5" <<<"$(params "$dir/card2.png")"'

# truncation at 75 tokens is said
long=$(printf 'koala %.0s' $(seq 1 100))
gen -m "$dir/m" -p "$long" --prompt-syntax plain -o "$dir/long.png" >/dev/null 2>"$dir/long.err"
check "--prompt-syntax plain says when it cuts the prompt at 75 tokens" \
    'grep -q "prompt: [0-9]* tokens; the text encoder reads only the first 75" "$dir/long.err"'
gen -m "$dir/m" -p "$long" -o "$dir/long2.png" >/dev/null 2>"$dir/long2.err"
check "  the a1111 syntax (any length) does not" '! grep -q "tokens; the text encoder" "$dir/long2.err"'
echo "$((n - fail)) passed, $fail failed"
[ $fail = 0 ]
