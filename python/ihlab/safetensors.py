"""The safetensors format (8-byte header length, JSON header, raw little-endian data) with numpy:
enough for ihlab's checkpoints and exports without the safetensors package."""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "F16": np.float16}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read(path):
    """(tensors {name: array}, metadata {str: str}) of a safetensors file, in file order."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if t["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor '{name}' has dtype {t['dtype']} (supported: {', '.join(_DTYPES)})")
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=_DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return tensors, meta


def write(path, tensors, metadata=None):
    """Writes {name: array} (float32/float64/int32/int64) with optional string metadata."""
    header, chunks, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype not in _NAMES:
            raise ValueError(f"safetensors: '{name}' has dtype {a.dtype} (supported: {', '.join(map(str, _NAMES))})")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
