"""Training convolutions shaped for XLA:CPU: each input in a buffer of its own, and the input
gradient of a stride-2 convolution computed by phases.

Stored input. For a convolution's weight gradient XLA:CPU transposes the layer's input
batch-minor, and its fusion pass moves the batch norm and ReLU that produced that input into the
transpose's loop: a strided loop 4-19x slower than transposing the stored array
(benchmarks/fused_transpose.py). optimization_barrier, bitcast and reduce_precision round trips
all end up inside that fusion on the CPU; a while loop whose trip count XLA cannot know does
not, its result being a buffer of its own. Measured in one process against lax's convolutions
(`xla_options.py --variants jaxssl,lax_convs`): 1.23x on SimCLR digits, 1.13x on DINO digits,
1.10x on the ResNet-18 CIFAR SimCLR step, with identical losses.

Input gradient by phases. XLA:CPU computes a strided convolution's input gradient as a
convolution over dy dilated with zeros (`lhs_dilate=2x2`): at stride 2, three of every four
products Eigen forms are with an inserted zero. Here it is one stride-1 convolution of dy per
phase of the input (even or odd row, even or odd column), with the kernel taps that reach that
phase, interleaved: every product lands on a real input pixel. 1.05-1.8x for the gradient of
a 3x3 or 1x1 stride-2 layer alone (`benchmarks/strided_input_grad.py`), 1.15x on the SimCLR
digits step and 1.34x on DINO digits (`xla_options.py --variants jaxssl,lax_input_grads`); the
sums run in another order, so input gradients agree to float rounding, not bit for bit.
ImageNet's 7x7 stem measured 0.5x this way and keeps lax's.

Hand-coded because neither flax nor XLA offers either on the CPU. On other platforms both are
lax's own (lax.platform_dependent picks the branch when the step is lowered), and evaluation and
export run plain convolutions.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


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


_NHWC = lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))  # flax's for 2-D


def _phase_taps(size: int, kernel: int, stride: int, low: int) -> list[tuple[int, list[int]]]:
    """Per phase r of the input (rows stride*m + r): the first output row it reads from, as an
    offset from m, and the kernel taps it meets, in the order a correlation applies them."""
    phases = []
    for r in range(stride):
        first = (r + low) % stride  # the first tap that lands on phase r
        taps = list(range(first, kernel, stride))[::-1]
        phases.append(((r + low) // stride - len(taps) + 1, taps))
    return phases


def _input_grad_by_phases(dy: jax.Array, rhs: jax.Array, lhs_shape, strides, pads) -> jax.Array:
    """A strided NHWC convolution's input gradient as stride * stride stride-1 convolutions of
    dy, one per phase of the input, interleaved: each multiply lands on a real input pixel."""
    n, height, width, channels = lhs_shape
    blocks = [-(-size // s) for size, s in zip((height, width), strides, strict=True)]
    per_dim = [
        _phase_taps(size, k, s, low)
        for size, k, s, (low, _) in zip((height, width), rhs.shape[:2], strides, pads, strict=True)
    ]
    zero = jnp.zeros((), dy.dtype)
    rows = []
    for start_h, taps_h in per_dim[0]:
        cols = []
        for start_w, taps_w in per_dim[1]:
            if not taps_h or not taps_w:  # no tap reaches this phase: its gradient is 0
                cols.append(jnp.zeros((n, *blocks, channels), dy.dtype))
                continue
            kernel = rhs[np.array(taps_h)][:, np.array(taps_w)].transpose(0, 1, 3, 2)
            padding = [(0, 0, 0)]
            for start, taps, size, m in zip(
                (start_h, start_w), (taps_h, taps_w), dy.shape[1:3], blocks, strict=True
            ):
                padding.append((-start, m + len(taps) - 1 - size + start, 0))
            shifted = lax.pad(dy, zero, [*padding, (0, 0, 0)])
            cols.append(
                lax.conv_general_dilated(shifted, kernel, (1, 1), "VALID", dimension_numbers=_NHWC)
            )
        rows.append(jnp.stack(cols, axis=3))  # [n, Mh, Mw, sw, c]
    full = jnp.stack(rows, axis=2)  # [n, Mh, sh, Mw, sw, c]
    full = full.reshape(n, blocks[0] * strides[0], blocks[1] * strides[1], channels)
    return full[:, :height, :width]


def _strided(lhs: jax.Array, rhs: jax.Array, strides, pads) -> jax.Array:
    return lax.conv_general_dilated(lhs, rhs, strides, pads, dimension_numbers=_NHWC)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(lhs: jax.Array, rhs: jax.Array, strides, pads) -> jax.Array:
    """lax's strided convolution; on the CPU its input gradient is computed by phases."""
    return _strided(lhs, rhs, strides, pads)


def _strided_conv_fwd(lhs, rhs, strides, pads):
    return _strided(lhs, rhs, strides, pads), (lhs, rhs)


def _strided_conv_bwd(strides, pads, residuals, dy):
    lhs, rhs = residuals
    weight_grad = jax.vjp(lambda w: _strided(lhs, w, strides, pads), rhs)[1](dy)[0]

    def by_phases(dy, rhs):
        return _input_grad_by_phases(dy, rhs, lhs.shape, strides, pads)

    def lax_own(dy, rhs):
        return jax.vjp(lambda x: _strided(x, rhs, strides, pads), lhs)[1](dy)[0]

    return lax.platform_dependent(dy, rhs, cpu=by_phases, default=lax_own), weight_grad


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def _stride_2_pads(lhs, rhs, strides, padding, dimension_numbers) -> tuple | None:
    """The padding pairs when the phase form applies to an otherwise plain convolution (2-D
    NHWC, stride 2, kernel up to 3x3), else None. Wider kernels, such as ImageNet's 7x7 stem,
    measured slower by phases (benchmarks/README.md)."""
    if lhs.ndim != 4 or max(strides) != 2 or max(rhs.shape[:2]) > 3:
        return None
    if lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != _NHWC:
        return None
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    pads = tuple((int(low), int(high)) for low, high in padding)
    return pads if min(min(p) for p in pads) >= 0 else None


def _conv_of_stored_input(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    **kwargs: Any,
) -> jax.Array:
    lhs = materialize(lhs, _runtime_one(rhs))
    dilations = (*(lhs_dilation or ()), *(rhs_dilation or ()))
    plain = (
        all(d == 1 for d in dilations)
        and feature_group_count == 1
        and all(v is None for v in kwargs.values())  # no precision or output type asked for
    )
    strides = tuple(window_strides)
    pads = _stride_2_pads(lhs, rhs, strides, padding, dimension_numbers) if plain else None
    if pads is not None:
        return _strided_conv(lhs, rhs, strides, pads)
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        dimension_numbers,
        feature_group_count,
        **kwargs,
    )


def conv_general_dilated(train: bool) -> Callable[..., jax.Array] | None:
    """nn.Conv's `conv_general_dilated`: the input materialized when training, else None (lax's)."""
    return _conv_of_stored_input if train else None
