"""Minimal pure-Python safetensors for the reference environment (not the project)."""
__version__ = "0.4.0"
import json, struct
from contextlib import contextmanager

class SafetensorError(Exception):
    pass

@contextmanager
def safe_open(path, framework="pt", device="cpu"):
    from .torch import _read
    tensors, meta = _read(path)
    class _H:
        def keys(self): return list(tensors.keys())
        def get_tensor(self, k): return tensors[k]
        def metadata(self): return meta
    yield _H()
from . import torch  # noqa: E402  (safetensors.torch.load_file as the real package exposes it)
