"""LoRA (Hu et al. 2021): rank-r updates W + (alpha / r) * A @ B on kernels chosen by path.

Kernels are matricised as [inputs, outputs]: Dense [in, out]; Conv (modules named *conv*,
*embed*) [kh * kw * in, out] (as in the LoRA repo's ConvLoRA); attention projections
[D, (3,) heads * head_dim], and [heads * head_dim, D] for output projections (modules "out").
The update is added to the kernel before the unchanged encoder runs, so any Flax encoder gets
LoRA without a module of its own (cost: one extra kernel-sized product per step); merging
writes the same sum into the params for export.
"""

import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import traverse_util


def input_axes(path: str, shape: Sequence[int]) -> int:
    """How many leading kernel axes are inputs when the kernel is matricised."""
    module = path.split("/")[-2] if "/" in path else ""
    if len(shape) == 4 and ("conv" in module or "embed" in module):
        return 3  # conv (and ViT's patch embedding): kh, kw, in | out
    if len(shape) == 3 and module == "out":
        return 2  # attention output projection: heads, head_dim | D
    return 1  # Dense / DenseGeneral projections such as qkv [D | 3, heads, head_dim]


def target_paths(encoder_params: Any, patterns: Sequence[str]) -> list[str]:
    """Encoder kernel paths (ndim >= 2) matching any of the regex patterns."""
    flat = traverse_util.flatten_dict(encoder_params)
    paths = ["/".join(k) for k, v in flat.items() if k[-1] == "kernel" and v.ndim >= 2]
    return [p for p in paths if any(re.search(pat, p) for pat in patterns)]


def init(rng: jax.Array, encoder_params: Any, patterns: Sequence[str], rank: int) -> Any:
    """{path...: {"a": [in, r] ~ N(0, 1/in), "b": [r, out] = 0}}: starts as the base model."""
    paths = target_paths(encoder_params, patterns)
    if not paths:
        raise ValueError(f"lora.target_patterns {list(patterns)} match no encoder kernel")
    flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(encoder_params).items()}
    out = {}
    for i, path in enumerate(paths):
        shape = flat[path].shape
        k = input_axes(path, shape)
        n_in, n_out = math.prod(shape[:k]), math.prod(shape[k:])
        a = jax.random.normal(jax.random.fold_in(rng, i), (n_in, rank)) / math.sqrt(n_in)
        out[tuple(path.split("/"))] = {"a": a, "b": jnp.zeros((rank, n_out))}
    return traverse_util.unflatten_dict(out)


def merge(encoder_params: Any, lora_params: Any, alpha: float, rank: int) -> Any:
    """Encoder params with every targeted kernel replaced by W + (alpha / rank) * A @ B."""
    scale = alpha / rank
    flat = traverse_util.flatten_dict(encoder_params)
    lora_flat = traverse_util.flatten_dict(lora_params)
    updates = {k[:-1] for k in lora_flat}  # paths of kernels: drop the trailing a / b
    merged = dict(flat)
    for key in updates:
        w = flat[key]
        delta = lora_flat[(*key, "a")] @ lora_flat[(*key, "b")]
        merged[key] = (w + scale * delta.reshape(w.shape)).astype(w.dtype)
    return traverse_util.unflatten_dict(merged)


def count(lora_params: Any) -> int:
    """Number of LoRA parameters."""
    return sum(x.size for x in jax.tree.leaves(lora_params))
