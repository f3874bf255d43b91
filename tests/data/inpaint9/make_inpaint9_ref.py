"""A tiny 9-channel inpainting U-Net and whole inpainting runs with it, from
diffusers' own code (v0.30.3).

The model: UNet2DConditionModel with in_channels 9 (4 latent + 1 mask + 4
masked-image latents, as diffusers/stable-diffusion-xl-1.0-inpainting-0.1)
and the text/time conditioning of ../shared/testdata/models/koala-700m-tiny
(cross_attention_dim 80, pooled 48, 6 time ids): unet_config.json here. Its
random weights are not committed: `leandiff init-random --config
unet_config.json --dtype f32 --seed 9` makes them (deterministic), here into a
temporary folder that diffusers loads, in the test the same way. The test
puts the U-Net in a StableDiffusionXLInpaintPipeline folder next to
koala-700m-tiny's text encoders, tokenizers, VAE and scheduler.

The runs follow StableDiffusionXLInpaintPipeline.__call__ step by step (the
pipeline module itself cannot be imported: it needs transformers, which is
not installable here, so its steps are transcribed with their names):
  image_processor.preprocess(image, height, width) (PIL LANCZOS resize),
  mask_processor.preprocess(mask, height, width) (resize, grey, binarise),
  after mask_processor.blur(mask, mask_blur) when the case has a blur (as
  diffusers' inpainting guide does);
  masked_image = init_image * (mask < 0.5);
  get_timesteps: the last min(int(N * strength), N) timesteps;
  prepare_latents: the init image is VAE-encoded (a latent_dist sample, times
  scaling_factor) only when strength < 1 (return_image_latents is False for 9
  channels), noise = randn; strength 1: latents = noise * init_noise_sigma,
  else scheduler.add_noise(image_latents, noise, timesteps[:1]);
  prepare_mask_latents: mask = F.interpolate(mask, latent size) (nearest),
  masked_image_latents = the masked image's VAE sample times scaling_factor;
  per step: x = scale_model_input(cat([latents] * 2), t), then
  cat([x, mask, masked_image_latents], dim=1) (mask and masked latents
  doubled for CFG), U-Net, guidance, scheduler.step; no blend-back;
  image = vae.decode(latents / scaling_factor).
The generator's draws are stored under leandiff's replay names, in order:
encode_noise (strength < 1), latents0, masked_encode_noise, step{i}.noise
(euler_a). The text embeddings are those diffusers' pipeline made for
cases/koala-700m-tiny/pipeline1.safetensors (same prompt and negative
prompt), as tests/data/samplers/make_sampler_pipelines.py does.
Run from the repository root:
  LEANDIFF_BIN=build/leandiff PYTHONPATH=$REF:$PWD/tools/refdata /usr/bin/python3 \
      tests/data/inpaint9/make_inpaint9_ref.py [TESTDATA]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import PIL.Image
import torch
import diffusers
import diffusers.models.autoencoders.vae as vae_module
from diffusers import UNet2DConditionModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
import koala_tiny_ref  # noqa: E402

ref = koala_tiny_ref.load()
vae, sched_cfg, emb, pooled = ref.vae, ref.sched_cfg, ref.emb, ref.pooled

# the U-Net: koala-700m-tiny's conditioning, two levels, 9 input channels; weights from leandiff init-random
unet_dir = os.path.join(tempfile.mkdtemp(), "unet")
subprocess.run([os.environ.get("LEANDIFF_BIN", "build/leandiff"), "init-random", "--config",
                os.path.join(here, "unet_config.json"), "--out", unet_dir, "--dtype", "f32", "--seed", "9"], check=True)
unet = UNet2DConditionModel.from_pretrained(unet_dir).eval()

# the inputs: a 101x67 picture and a mask with a disc, a band and soft edges
H0, W0 = 67, 101
rng = np.random.default_rng(9)
yy, xx = np.mgrid[0:H0, 0:W0].astype(np.float64)
img = np.stack([128 + 90 * np.sin(xx / 11.0), 128 + 90 * np.cos(yy / 6.0), (xx * 3 + yy * 2) % 256], axis=-1)
img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
msk = np.zeros((H0, W0, 3), np.uint8)
msk[(xx - 55) ** 2 + (yy - 35) ** 2 < 20 ** 2] = 255
msk[(xx > 8) & (xx < 20)] = (140, 150, 130)
image_pil, mask_pil = PIL.Image.fromarray(img, "RGB"), PIL.Image.fromarray(msk, "RGB")
ip = VaeImageProcessor(vae_scale_factor=8)
mp = VaeImageProcessor(vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True)

drawn = []
def capture(module):  # records what the VAE sample and the stochastic schedulers draw
    real = module.randn_tensor
    def fake(shape, generator=None, device=None, dtype=None, layout=None):
        x = real(shape, generator=generator, device=device, dtype=dtype, layout=layout)
        drawn.append(x.clone())
        return x
    module.randn_tensor = fake
capture(vae_module)
capture(diffusers.schedulers.scheduling_euler_ancestral_discrete)

def encode(x, gen):  # _encode_vae_image
    drawn.clear()
    z = vae.encode(x).latent_dist.sample(gen)
    assert len(drawn) == 1
    return vae.config.scaling_factor * z, drawn[0]

CASES = [  # name, sampler class, leandiff sampler, steps, strength, guidance, height, width, mask blur, seed
    ("inpaint9_full", "EulerDiscreteScheduler", "euler", 4, 1.0, 3.5, 64, 96, 4, 11),
    ("inpaint9_part", "EulerAncestralDiscreteScheduler", "euler_a", 5, 0.6, 3.5, 48, 80, 0, 12),
]
for name, cls, sampler, N, strength, G, H, W, blur, seed in CASES:
    gen = torch.Generator().manual_seed(seed)
    sched = getattr(diffusers, cls).from_config(sched_cfg)
    sched.set_timesteps(N)
    init_timestep = min(int(N * strength), N)
    t_start = max(N - init_timestep, 0)
    timesteps = sched.timesteps[t_start * sched.order:]
    init_image = ip.preprocess(image_pil, height=H, width=W).to(torch.float32)
    mask = mp.preprocess(mp.blur(mask_pil, blur) if blur else mask_pil, height=H, width=W)
    masked_image = init_image * (mask < 0.5)
    out = {"init_image_rgb_u8": torch.from_numpy(img), "mask_rgb_u8": torch.from_numpy(msk)}
    with torch.no_grad():
        if strength < 1.0:
            image_latents, out["encode_noise"] = encode(init_image, gen)
            out["image_latents"] = image_latents
        noise = randn_tensor((1, 4, H // 8, W // 8), generator=gen)
        out["latents0"] = noise
        if strength == 1.0:
            latents = noise * sched.init_noise_sigma
        else:
            latents = sched.add_noise(image_latents, noise, timesteps[:1])
        mask_l = torch.nn.functional.interpolate(mask, size=(H // 8, W // 8))
        masked_latents, out["masked_encode_noise"] = encode(masked_image, gen)
        out["mask_latents"], out["masked_image_latents"] = mask_l, masked_latents
        mask2, masked2 = torch.cat([mask_l] * 2), torch.cat([masked_latents] * 2)
        add_time_ids = torch.tensor([[H, W, 0, 0, H, W]] * 2, dtype=torch.float32)
        for i, t in enumerate(timesteps):
            x = sched.scale_model_input(torch.cat([latents] * 2), t)
            x = torch.cat([x, mask2, masked2], dim=1)
            eps = unet(x, t, encoder_hidden_states=emb,
                       added_cond_kwargs={"text_embeds": pooled, "time_ids": add_time_ids}).sample
            u, c = eps.chunk(2)
            eps = u + G * (c - u)
            drawn.clear()
            latents = sched.step(eps, t, latents, generator=gen).prev_sample
            assert len(drawn) <= 1
            if drawn:
                out["step%d.noise" % i] = drawn[0]
            out["step%d.latents" % i] = latents
        out["final_latents"] = latents
        out["timesteps"] = timesteps.to(torch.float32)
        image = vae.decode(latents / vae.config.scaling_factor).sample
    out["image"] = image
    out["image_u8"] = (image / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    meta = {"prompt": koala_tiny_ref.PROMPT, "negative_prompt": koala_tiny_ref.NEGATIVE,
            "negative_is_none": "false", "steps": str(N), "guidance_scale": str(G), "sampler": sampler,
            "schedule": "default", "height": str(H), "width": str(W), "strength": str(strength),
            "mask_blur": str(blur), "mode": "inpaint", "scheduler_class": cls,
            "generator": "diffusers %s (tests/data/inpaint9/make_inpaint9_ref.py)" % diffusers.__version__}
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(here, name + ".safetensors"), metadata=meta)
    print("wrote", name, "steps run", len(timesteps), "keys", sorted(out))
