"""Training convolutions whose input XLA:CPU keeps in a buffer of its own.

For a convolution's weight gradient XLA:CPU transposes the layer's input batch-minor, and its
fusion pass moves the batch norm and ReLU that produced that input into the transpose's loop:
a strided loop 4-19x slower than transposing the stored array (benchmarks/fused_transpose.py).
optimization_barrier, bitcast and reduce_precision round trips all end up inside that fusion
on the CPU; a while loop whose trip count XLA cannot know does not, its result being a buffer
of its own. Hand-coded because neither flax nor XLA offers a way to keep a producer out of a
fusion on the CPU. On other platforms `materialize` is the identity (lax.platform_dependent
picks the branch when the step is lowered), and evaluation and export run plain convolutions.
Measured in one process against the same step on lax's convolutions (`xla_options.py --variants
jaxssl,lax_convs`): 1.23x on SimCLR digits, 1.13x on DINO digits, 1.10x on the ResNet-18 CIFAR
SimCLR step, with identical losses (benchmarks/README.md).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def _runtime_one(kernel: jax.Array) -> jax.Array:
    """int32 1 that XLA cannot fold: (bits | 1) & 1 of one kernel element."""
    bits = jax.lax.bitcast_convert_type(kernel.reshape(-1)[0].astype(jnp.float32), jnp.uint32)
    return ((bits | 1) & 1).astype(jnp.int32)


def _copy_in_loop(x: jax.Array, one: jax.Array) -> jax.Array:
    """x, computed by one trip of a loop XLA cannot unroll (x * 1.0 is x, bit for bit)."""
    factor = one.astype(x.dtype)

    def body(carry):
        i, value = carry
        return i + 1, value * factor

    return jax.lax.while_loop(lambda c: c[0] < one, body, (jnp.zeros((), jnp.int32), x))[1]


@jax.custom_vjp
def materialize(x: jax.Array, one: jax.Array) -> jax.Array:
    """x itself; on the CPU, stored as the output of a loop so no consumer fuses its producer.
    `one` is `_runtime_one(...)`: a runtime 1 keeps XLA from unrolling and removing the loop."""
    return jax.lax.platform_dependent(x, one, cpu=_copy_in_loop, default=lambda x, _: x)


def _materialize_fwd(x: jax.Array, one: jax.Array):
    return materialize(x, one), one


def _materialize_bwd(one: jax.Array, g: jax.Array):
    return g, jnp.zeros_like(one)


materialize.defvjp(_materialize_fwd, _materialize_bwd)


def _conv_of_stored_input(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
    return jax.lax.conv_general_dilated(materialize(lhs, _runtime_one(rhs)), rhs, *args, **kwargs)


def conv_general_dilated(train: bool) -> Callable[..., jax.Array] | None:
    """nn.Conv's `conv_general_dilated`: the input materialized when training, else None (lax's)."""
    return _conv_of_stored_input if train else None
