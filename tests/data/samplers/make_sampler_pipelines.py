"""Whole tiny KOALA runs with every sampler, from diffusers' own code
(v0.30.3): UNet2DConditionModel, AutoencoderKL and the scheduler classes on
../shared/testdata/models/koala-700m-tiny, in StableDiffusionXLPipeline's
denoising loop (scale_model_input, U-Net on [uncond; cond], guidance, step;
the VAE decode of latents / scaling_factor). The text embeddings are the ones
diffusers' pipeline made for cases/koala-700m-tiny/pipeline1.safetensors
(transformers, which the text encoders need, is not installable here; leandiff
reproduces those embeddings in test_koala_pipeline). Every random number is
stored: latents0 (standard normal, before init_noise_sigma) and, for
stochastic samplers, step{i}.noise = what the step at call i draws (captured
by wrapping diffusers' randn_tensor). One file per sampler, named by its
leandiff short name and schedule, in the pipeline-case format of
testdata/README.md. Run from the repository root:
  PYTHONPATH=$REF:$PWD/tools/refdata /usr/bin/python3 tests/data/samplers/make_sampler_pipelines.py [TESTDATA]
"""
import inspect
import os
import sys

import torch
import diffusers
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))
import koala_tiny_ref  # noqa: E402

ref = koala_tiny_ref.load()
model, case, vae, sched_cfg, emb, pooled = ref.model, ref.case, ref.vae, ref.sched_cfg, ref.emb, ref.pooled
unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet").eval()

H, W, STEPS, G = 96, 160, 4, 3.5
prompt, negative = koala_tiny_ref.PROMPT, koala_tiny_ref.NEGATIVE
time_ids = torch.cat([case["time_ids"], case["time_ids"]])

SAMPLERS = [  # leandiff name, schedule, diffusers class, config overrides
    ("euler", "default", "EulerDiscreteScheduler", {}),
    ("euler", "karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    ("euler_a", "default", "EulerAncestralDiscreteScheduler", {}),
    ("dpm++2m", "default", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    ("dpm++2m", "karras", "DPMSolverMultistepScheduler",
     {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    ("dpm++2m_sde", "karras", "DPMSolverMultistepScheduler",
     {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    ("dpm++2s", "default", "DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    ("unipc", "default", "UniPCMultistepScheduler", {}),
    ("ddim", "default", "DDIMScheduler", {}),
    ("heun", "default", "HeunDiscreteScheduler", {}),
    ("dpm2", "karras", "KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    ("lcm", "default", "LCMScheduler", {}),
]

drawn = []
def capture(module):
    real = module.randn_tensor
    def fake(shape, generator=None, device=None, dtype=None, layout=None):
        x = real(shape, generator=generator, device=device, dtype=dtype, layout=layout)
        drawn.append(x.clone())
        return x
    module.randn_tensor = fake

for m in ("scheduling_euler_ancestral_discrete", "scheduling_dpmsolver_multistep", "scheduling_lcm"):
    capture(getattr(diffusers.schedulers, m))

for idx, (name, schedule, cls, over) in enumerate(SAMPLERS):
    torch.manual_seed(1000 + idx)
    sched = getattr(diffusers, cls).from_config(dict(sched_cfg, **over))
    sched.set_timesteps(STEPS)
    out = {"latents0": torch.randn(1, 4, H // 8, W // 8)}
    latents = out["latents0"] * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            x = sched.scale_model_input(torch.cat([latents] * 2), t)
            eps = unet(x, t, encoder_hidden_states=emb,
                       added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
            u, c = eps.chunk(2)
            eps = u + G * (c - u)
            drawn.clear()
            # as the pipeline's prepare_extra_step_kwargs: eta (0) and generator where step() takes them
            params = inspect.signature(sched.step).parameters
            kw = {k: v for k, v in (("eta", 0.0), ("generator", gen)) if k in params}
            latents = sched.step(eps, t, latents, **kw).prev_sample
            assert len(drawn) <= 1
            if drawn:
                out["step%d.noise" % i] = drawn[0]
            out["step%d.latents" % i] = latents
        out["final_latents"] = latents
        out["timesteps"] = sched.timesteps.to(torch.float32)
        image = vae.decode(latents / vae.config.scaling_factor).sample
    out["image"] = image
    out["image_u8"] = (image / 2 + 0.5).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    meta = {"prompt": prompt, "negative_prompt": negative, "negative_is_none": "false", "steps": str(STEPS),
            "guidance_scale": str(G), "sampler": name, "schedule": schedule, "height": str(H), "width": str(W),
            "scheduler_class": cls, "generator": "diffusers 0.30.3 (tests/data/samplers/make_sampler_pipelines.py)"}
    fname = "%s%s.safetensors" % (name.replace("+", "p"), "_karras" if schedule == "karras" else "")
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(here, fname), metadata=meta)
    print("wrote", fname, "calls", len(sched.timesteps))
