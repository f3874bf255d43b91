"""What the reference scripts under tests/data share: the test data folder
(argv[1], else ../shared/testdata beside the repository), the tiny KOALA
model's VAE and scheduler config from diffusers, and the text conditioning
diffusers' pipeline made for cases/koala-700m-tiny/pipeline1.safetensors
(transformers, which the text encoders need, is not installable here), for
classifier-free guidance: [negative; prompt].

    import koala_tiny_ref as ref
    r = ref.load()
    ... r.td, r.model, r.case, r.vae, r.sched_cfg, r.emb, r.pooled ...
"""
import json
import os
import sys
import types

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

PROMPT, NEGATIVE = "a red cube on a blue sphere", "blurry, low quality"


def load():
    here = os.path.dirname(os.path.abspath(__file__))
    td = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "shared", "testdata")
    model = os.path.join(td, "models", "koala-700m-tiny")
    case = load_file(os.path.join(td, "cases", "koala-700m-tiny", "pipeline1.safetensors"))
    return types.SimpleNamespace(
        td=td, model=model, case=case,
        vae=AutoencoderKL.from_pretrained(model, subfolder="vae").eval(),
        sched_cfg=json.load(open(os.path.join(model, "scheduler", "scheduler_config.json"))),
        emb=torch.cat([case["negative_prompt_embeds"], case["prompt_embeds"]]),
        pooled=torch.cat([case["negative_pooled_prompt_embeds"], case["pooled_prompt_embeds"]]))
