import json, struct
import torch
import numpy as np

_DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
       "BOOL": torch.bool}
_RDT = {v: k for k, v in _DT.items()}

def _read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for k, v in hdr.items():
        a, b = v["data_offsets"]
        buf = bytearray(data[base + a: base + b])
        dt = _DT[v["dtype"]]
        if len(buf) == 0:
            t = torch.empty(v["shape"], dtype=dt)
        else:
            t = torch.frombuffer(buf, dtype=dt).reshape(v["shape"]).clone()
        out[k] = t
    return out, meta

def load_file(path, device="cpu"):
    return _read(path)[0]

def load(data):
    import tempfile, os
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data); p = f.name
    try:
        return load_file(p)
    finally:
        os.unlink(p)

def save_file(tensors, path, metadata=None):
    hdr = {}
    blobs = []
    off = 0
    for k in sorted(tensors.keys()):
        t = tensors[k].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            b = t.view(torch.int16).numpy().tobytes()
        else:
            b = t.numpy().tobytes()
        hdr[k] = {"dtype": _RDT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        hdr["__metadata__"] = {str(a): str(b) for a, b in metadata.items()}
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
