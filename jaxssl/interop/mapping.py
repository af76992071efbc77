"""Helpers shared by the converters: a state-dict reader that records what it used, and the
layout changes between PyTorch (Linear [out, in], Conv [out, in, kh, kw]) and Flax."""

import re

import numpy as np

from jaxssl.config import ConfigError
from jaxssl.interop.tensors import StateDict

# Old checkpoints (bert-base-uncased ...) name LayerNorm params gamma / beta.
_RENAMES = ((re.compile(r"\.gamma$"), ".weight"), (re.compile(r"\.beta$"), ".bias"))


class Reader:
    """Named tensors of a state dict with known prefixes stripped; take() records use."""

    def __init__(self, state: StateDict, source: str, prefixes: tuple[str, ...] = ()):
        self.source = source
        self.tensors: StateDict = {}
        for name, value in state.items():
            for prefix in prefixes:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    break
            for pattern, repl in _RENAMES:
                name = pattern.sub(repl, name)
            self.tensors[name] = value
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.tensors

    def take(self, name: str) -> np.ndarray:
        """The float32 tensor `name`; a ConfigError naming the file when it is missing."""
        if name not in self.tensors:
            raise ConfigError(
                f"{self.source} has no tensor {name!r}: it is not a checkpoint of the "
                "architecture its config.json names, or it was saved partially"
            )
        self.used.add(name)
        return np.asarray(self.tensors[name], np.float32)

    def unused(self) -> list[str]:
        """Names never taken (heads this job does not use, buffers ...)."""
        return sorted(set(self.tensors) - self.used)

    def dense(self, name: str, bias: bool = True) -> dict[str, np.ndarray]:
        """nn.Linear `name` -> Flax Dense {kernel [in, out], bias}."""
        out = {"kernel": self.take(f"{name}.weight").T}
        if bias:
            out["bias"] = self.take(f"{name}.bias")
        return out

    def layer_norm(self, name: str) -> dict[str, np.ndarray]:
        """nn.LayerNorm `name` -> Flax LayerNorm {scale, bias}."""
        return {"scale": self.take(f"{name}.weight"), "bias": self.take(f"{name}.bias")}


def linear(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flax Dense -> nn.Linear {weight [out, in], bias}."""
    out = {"weight": np.asarray(params["kernel"]).T}
    if "bias" in params:
        out["bias"] = np.asarray(params["bias"])
    return out


def layer_norm(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flax LayerNorm -> nn.LayerNorm {weight, bias}."""
    return {"weight": np.asarray(params["scale"]), "bias": np.asarray(params["bias"])}


def conv_to_flax(weight: np.ndarray) -> np.ndarray:
    """Conv2d weight [out, in, kh, kw] -> Flax Conv kernel [kh, kw, in, out]."""
    return np.transpose(weight, (2, 3, 1, 0))


def conv_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Flax Conv kernel [kh, kw, in, out] -> Conv2d weight [out, in, kh, kw]."""
    return np.transpose(np.asarray(kernel), (3, 2, 0, 1))


def flat(prefix: str, tree: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{prefix.k: v} of a {k: v} dict."""
    return {f"{prefix}.{k}": v for k, v in tree.items()}
