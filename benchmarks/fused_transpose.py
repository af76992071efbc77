"""XLA:CPU's batch-minor transpose with batch norm + ReLU fused in, against the two done apart.

For a convolution's weight gradient XLA:CPU transposes the layer's input [N,H,W,C] to
[C,H,W,N] (the batch becomes the contracted feature dimension of its Eigen convolution), and
its fusion pass moves the batch norm and ReLU that produced that input into the transpose's
loop. This times, each jitted alone on the same arrays: that fused loop; a plain transpose of a
materialized array; batch norm + ReLU alone; and the fused loop behind the usual ways of
keeping a producer out of a fusion (optimization_barrier, a bitcast round trip, reduce_precision),
none of which XLA:CPU keeps. Last line: `ratios: SHAPE=X ...` (fused time / (plain transpose +
batch norm + ReLU) time; above 1, the fusion costs time).

  python benchmarks/fused_transpose.py                  # digits conv1's input, ResNet-18 stage 1's
  python benchmarks/fused_transpose.py --shapes 256x16x16x128 --repeats 20
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from throughput import median_seconds  # benchmarks/ is the script's folder

import jaxssl  # noqa: F401  (jaxssl's XLA:CPU setting, as in a run)


def bn_relu(y, mean, scale, bias):
    return jax.nn.relu((y - mean) * scale + bias)


def batch_minor(x):
    return jnp.transpose(x, (3, 1, 2, 0))


VARIANTS = {
    "fused": lambda *a: batch_minor(bn_relu(*a)),
    "plain_transpose": lambda y, *_: batch_minor(y),
    "bn_relu": bn_relu,
    "optimization_barrier": lambda *a: batch_minor(jax.lax.optimization_barrier(bn_relu(*a))),
    "bitcast_round_trip": lambda *a: batch_minor(
        jax.lax.bitcast_convert_type(
            jax.lax.bitcast_convert_type(bn_relu(*a), jnp.int32), jnp.float32
        )
    ),
    "reduce_precision": lambda *a: batch_minor(jax.lax.reduce_precision(bn_relu(*a), 8, 23)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="512x16x16x32,256x32x32x64", help="NxHxWxC,...")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    ratios = []
    print(f"{jax.devices()[0].device_kind}; median ms of {args.repeats} calls")
    for text in args.shapes.split(","):
        shape = tuple(int(d) for d in text.split("x"))
        c = shape[-1]
        arrays = (
            jnp.asarray(rng.standard_normal(shape), jnp.float32),
            *(jnp.asarray(rng.standard_normal(c), jnp.float32) for _ in range(3)),
        )
        ms = {}
        for name, fn in VARIANTS.items():
            ms[name] = median_seconds(jax.jit(fn), *arrays, repeats=args.repeats) * 1e3
            print(f"{text:16s} {name:22s} {ms[name]:8.2f} ms")
        ratios.append(f"{text}={ms['fused'] / (ms['plain_transpose'] + ms['bn_relu']):.2f}")
    print("ratios: " + " ".join(ratios))


if __name__ == "__main__":
    main()
