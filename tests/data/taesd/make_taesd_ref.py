"""Reference data for leandiff's AutoencoderTiny (TAESD) from diffusers' own
AutoencoderTiny (v0.30.3): a tiny random-weight folder in the real layout and
what diffusers computes from it. See tools/refdata/README.md for the setup.

  config.json   the real architecture (decoder blocks 3,3,3,1; encoder 1,3,3,3)
                at width 16; its random weights are not committed: `leandiff
                init-random --config config.json --dtype f32 --seed 20261204`
                makes them (deterministic), here and in the tests
  case.safetensors:
    latents{i}  [B, 4, h, w]   -> decoded{i} = vae.decode(latents).sample  (in [-1, 1] scale)
    image{i}    [B, 3, H, W]   -> encoded{i} = vae.encode(image).latents
Run from the repository root:
  LEANDIFF_BIN=build/leandiff PYTHONPATH=$REF:$PWD/tools/refdata /usr/bin/python3 tests/data/taesd/make_taesd_ref.py
"""
import os
import subprocess
import tempfile

import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
model = os.path.join(tempfile.mkdtemp(), "taesd")
subprocess.run([os.environ.get("LEANDIFF_BIN", "build/leandiff"), "init-random", "--config",
                os.path.join(here, "config.json"), "--out", model, "--dtype", "f32", "--seed", "20261204"], check=True)
vae = AutoencoderTiny.from_pretrained(model).eval()
torch.manual_seed(20261204)

out = {}
with torch.no_grad():
    for i, (b, h, w) in enumerate([(1, 8, 8), (2, 5, 7)]):
        lat = torch.randn(b, 4, h, w) * 2.0
        out[f"latents{i}"] = lat
        out[f"decoded{i}"] = vae.decode(lat).sample
    for i, (b, hh, ww) in enumerate([(1, 64, 64), (2, 40, 56)]):
        img = torch.rand(b, 3, hh, ww) * 2 - 1
        out[f"image{i}"] = img
        out[f"encoded{i}"] = vae.encode(img).latents
save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(here, "case.safetensors"),
          metadata={"generator": "diffusers 0.30.3 AutoencoderTiny (tests/data/taesd/make_taesd_ref.py)",
                    "torch": torch.__version__})
print("wrote", here)
