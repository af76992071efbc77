"""Reading and writing PyTorch-layout state dicts as numpy: safetensors, or .pth / .bin via torch.

safetensors is read without torch. A pickled .pth / .bin needs torch (never a jaxssl dependency):
without it the error says how to convert the file to safetensors.
"""

import os
from typing import Any

import numpy as np

from jaxssl.config import ConfigError

StateDict = dict[str, np.ndarray]
SAFETENSORS = (".safetensors",)
PICKLED = (".pth", ".pt", ".bin")
TO_SAFETENSORS = (
    'python -c "import torch, safetensors.torch as s; '
    "s.save_file({k: v.contiguous() for k, v in torch.load('IN', map_location='cpu').items()"
    " if hasattr(v, 'contiguous')}, 'OUT.safetensors')\""
)


def read(path: str | os.PathLike) -> StateDict:
    """{name: float32/int numpy array} of a .safetensors, .pth, .pt or .bin file."""
    path = os.fspath(path)
    if path.endswith(SAFETENSORS):
        from safetensors.numpy import load_file

        try:
            return dict(load_file(path))
        except Exception as e:  # safetensors raises its own error types for damaged files
            raise ConfigError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    if path.endswith(PICKLED):
        return _read_pickled(path)
    raise ConfigError(f"{path}: not a state dict file ({', '.join(SAFETENSORS + PICKLED)})")


def _read_pickled(path: str) -> StateDict:
    try:
        import torch
    except ImportError:
        raise ConfigError(
            f"{path} is a pickled PyTorch file and torch is not installed: install torch, or "
            f"convert it to safetensors once where torch is: {TO_SAFETENSORS}"
        ) from None
    obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ConfigError(f"{path} holds a {type(obj).__name__}, not a state dict")
    out = {}
    for name, value in obj.items():
        if hasattr(value, "detach"):
            value = value.detach()
            if value.dtype == torch.bfloat16:
                value = value.float()
            out[name] = value.numpy()
    return out


def write(path: str | os.PathLike, tensors: StateDict, metadata: dict[str, str] | None = None):
    """Writes tensors (contiguous numpy arrays) as a .safetensors file."""
    from safetensors.numpy import save_file

    save_file(
        {k: np.ascontiguousarray(v) for k, v in tensors.items()},
        os.fspath(path),
        metadata={"format": "pt", **(metadata or {})},
    )
