"""Exponential moving averages of params (MoCo / BYOL target networks) and their schedule."""

from typing import Any

import jax
import jax.numpy as jnp


def cosine_momentum(base: float, step: jax.Array, total_steps: int) -> jax.Array:
    """BYOL / MoCo v3 schedule: 1 - (1 - base) * (cos(pi * step / total) + 1) / 2, base -> 1."""
    progress = jnp.clip(step / max(total_steps, 1), 0.0, 1.0)
    return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def ema_update(target: Any, online: Any, momentum: jax.Array) -> Any:
    """target <- momentum * target + (1 - momentum) * online, leaf by leaf."""
    return jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, target, online)
