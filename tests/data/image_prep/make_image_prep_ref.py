"""Reference for leandiff's init-image and mask preparation, made with
diffusers' own VaeImageProcessor (v0.30.3, Pillow 9.4 underneath):

- init.<case>: image_processor.preprocess(image, height, width) as
  StableDiffusionXLImg2ImgPipeline / InpaintPipeline call it
  (VaeImageProcessor(vae_scale_factor=8): resize_mode "default", PIL
  LANCZOS; no height/width = the image's size rounded down to a multiple of
  8), a float tensor in [-1, 1], [1, 3, H, W];
- mask.<case>: mask_processor.preprocess(mask, height, width) of the
  InpaintPipeline (do_normalize False, do_binarize True,
  do_convert_grayscale True: LANCZOS resize of the mask as given, convert("L"),
  /255, 0 below 0.5 else 1), [1, 1, H, W], after
  mask_processor.blur(mask, blur_factor) (PIL ImageFilter.GaussianBlur) when
  the case has a blur; stored as U8 0 / 1;
- blur.<r>: the blurred mask itself (RGB8, H x W x 3) for radius r.

Inputs: image_u8 (67 x 101 x 3, smooth colours plus noise) and mask_u8
(67 x 101 x 3, a coloured disc and a grey band). Run from the repository root:
  PYTHONPATH=$REF:$PWD/tools/refdata /usr/bin/python3 tests/data/image_prep/make_image_prep_ref.py
"""
import os

import numpy as np
import PIL
import PIL.Image
import torch
import diffusers
from diffusers.image_processor import VaeImageProcessor
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
H0, W0 = 67, 101
rng = np.random.default_rng(17)
yy, xx = np.mgrid[0:H0, 0:W0].astype(np.float64)
img = np.stack([128 + 100 * np.sin(xx / 9.0), 128 + 100 * np.cos(yy / 7.0), (xx * 2 + yy * 3) % 256], axis=-1)
img = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
mask = np.zeros((H0, W0, 3), np.uint8)
disc = (xx - 60) ** 2 + (yy - 30) ** 2 < 18 ** 2
mask[disc] = (255, 230, 90)           # light: L above half grey
mask[(xx > 10) & (xx < 25)] = (120, 140, 125)   # grey band near half
mask[(yy > 50) & (xx < 40)] = 255

image = PIL.Image.fromarray(img, "RGB")
mask_image = PIL.Image.fromarray(mask, "RGB")
ip = VaeImageProcessor(vae_scale_factor=8)
mp = VaeImageProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True)

def u8(m):  # the binarized mask (exactly 0 or 1) as U8
    assert ((m == 0) | (m == 1)).all()
    return m.to(torch.uint8).contiguous()


out = {"image_u8": torch.from_numpy(img), "mask_u8": torch.from_numpy(mask)}
SIZES = {"own": (None, None), "down": (48, 80), "up": (88, 136), "odd": (40, 104)}  # name: (height, width)
for name, (h, w) in SIZES.items():
    out["init." + name] = ip.preprocess(image, height=h, width=w).contiguous()
    out["mask." + name] = u8(mp.preprocess(mask_image, height=h, width=w))
for r in (1, 4, 9):
    blurred = mp.blur(mask_image, r)
    out["blur.%d" % r] = torch.from_numpy(np.array(blurred))
    out["mask.up.blur%d" % r] = u8(mp.preprocess(blurred, height=88, width=136))
meta = {"sizes": ";".join("%s=%sx%s" % (k, w, h) for k, (h, w) in SIZES.items()), "blurs": "1,4,9",
        "generator": "diffusers %s VaeImageProcessor, Pillow %s (tests/data/image_prep/make_image_prep_ref.py)"
        % (diffusers.__version__, PIL.__version__)}
save_file(out, os.path.join(here, "image_prep.safetensors"), metadata=meta)
for k, v in out.items():
    print(k, tuple(v.shape), v.dtype)
