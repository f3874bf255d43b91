#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu checkout to an image:
#   tools/demo.sh [MODEL_DIR] [PROMPT]
# installs the packages that are missing (apt-get runs only then), builds,
# and runs `leandiff generate`.
# With MODEL_DIR (a downloaded KOALA / SDXL / Wuerstchen prior / Stable Cascade
# prior folder; see README "Getting real weights") it makes a real image.
# Without it, leandiff first writes a small RANDOM-WEIGHT pipeline of the
# KOALA-700M structure (init-random --pipeline tiny): the whole pipeline runs
# for real, but the picture is colored noise, because the weights are random.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
make -j"$(nproc)"
model="${1:-}"
prompt="${2:-a koala reading a newspaper, studio photo}"
mkdir -p out
if [ -z "$model" ]; then
  model=build/demo-random-tiny
  echo
  echo "== No model folder given: making a RANDOM-WEIGHT demo pipeline in $model"
  echo "== (the output will be noise; pass a downloaded model folder for a real image)"
  ./build/leandiff init-random --pipeline tiny --out "$model" --seed 1
fi
./build/leandiff generate -m "$model" -p "$prompt" -o out/demo.png
./build/leandiff info out/demo.png
echo "image: out/demo.png"
