"""The train state: one pytree holding everything a step reads and writes."""

from typing import Any

import jax
from flax import struct


@struct.dataclass
class TrainState:
    """Pre-training state. `params` are optimized; `model_state` holds the rest.

    model_state carries non-gradient variables a method owns: batch-norm
    statistics, EMA target networks, queues of negatives. The step's randomness is
    fold_in(rng, step), so a resumed run draws the same keys as an uninterrupted one.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any
    rng: jax.Array
