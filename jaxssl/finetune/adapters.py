"""Bottleneck adapters (Houlsby et al. 2019) inserted after encoder blocks, without new modules.

An adapter maps a block's output h to h + relu(h @ down + b_d) @ up + b_u with `up` zero, so
training starts from the pre-trained function. It is attached with flax's
`nn.intercept_methods`: every submodule whose path ("stage2_block1", "transformer/block3",
"bn1") matches a pattern has its output passed through its adapter, so any Flax encoder works.
ResNet blocks, ViT/Transformer blocks: after the block. cnn_small has no module per stage, so
its adapters sit after each stage's BatchNorm (bn{i}), before that stage's ReLU.
"""

import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _module_path(context: Any) -> str:
    return "/".join(str(p) for p in context.module.path)


def _targets(patterns: Sequence[str]) -> Callable[[Any], str | None]:
    def match(context) -> str | None:
        if context.method_name != "__call__":
            return None
        path = _module_path(context)
        return path if path and any(re.fullmatch(p, path) for p in patterns) else None

    return match


def output_shapes(
    apply_fn: Callable[[], Any], patterns: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """{module path: output shape} of the matched modules, traced with jax.eval_shape."""
    match, shapes = _targets(patterns), {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        path = match(context)
        if path is not None:
            if not isinstance(out, jax.Array | jax.ShapeDtypeStruct):
                raise ValueError(f"adapter target {path!r} does not return one array")
            shapes[path] = tuple(out.shape)
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(apply_fn)
    return shapes


def init(rng: jax.Array, shapes: dict[str, tuple[int, ...]], bottleneck: int) -> dict[str, Any]:
    """Adapter params per target path (keys use '.' for '/': a flat, orbax-safe dict)."""
    if not shapes:
        raise ValueError("adapter.target_patterns match no encoder module")
    out = {}
    for i, (path, shape) in enumerate(sorted(shapes.items())):
        dim = shape[-1]
        down = nn.initializers.lecun_normal()(jax.random.fold_in(rng, i), (dim, bottleneck))
        out[path.replace("/", ".")] = {
            "down": {"kernel": down, "bias": jnp.zeros((bottleneck,))},
            "up": {"kernel": jnp.zeros((bottleneck, dim)), "bias": jnp.zeros((dim,))},
        }
    return out


def adapter(p: dict[str, Any], h: jax.Array) -> jax.Array:
    """h + up(relu(down(h))) over the last (channel) axis, in h's dtype."""
    z = nn.relu(h @ p["down"]["kernel"].astype(h.dtype) + p["down"]["bias"].astype(h.dtype))
    return h + z @ p["up"]["kernel"].astype(h.dtype) + p["up"]["bias"].astype(h.dtype)


def attach(adapter_params: dict[str, Any]) -> AbstractContextManager:
    """Context under which encoder.apply runs with the adapters after their modules."""
    by_path = {k.replace(".", "/"): v for k, v in adapter_params.items()}

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            p = by_path.get(_module_path(context))
            if p is not None:
                out = adapter(p, out)
        return out

    return nn.intercept_methods(interceptor)
