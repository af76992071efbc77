"""A stride-2 convolution's input gradient: XLA:CPU's own against jaxssl's by phases.

XLA computes the input gradient of a strided convolution as a convolution over dy dilated with
zeros (`lhs_dilate=2x2`); jaxssl/models/cpu_conv.py computes it as one stride-1 convolution per
phase of the input, interleaved. Each layer's two gradients are jitted alone on the same arrays
and timed in alternating rounds; the phases' values are checked against lax's. Layers are
NxHxWxC-KxK-O (input, kernel, output channels), stride 2, "SAME" padding. Last line:
`ratios: LAYER=X ...` (lax's time / the phases'; above 1, the phases are faster).

  python benchmarks/strided_input_grad.py     # digits' convs, ResNet-18 CIFAR, ImageNet's stem
  python benchmarks/strided_input_grad.py --layers 64x56x56x256-1x1-512 --repeats 20
"""

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np
from throughput import median_seconds  # benchmarks/ is the script's folder

from jaxssl.models import cpu_conv  # also jaxssl's XLA:CPU setting, as in a run

DEFAULT = (
    "512x16x16x32-3x3-64",  # simclr_digits conv1
    "512x8x8x64-3x3-128",  # simclr_digits conv2
    "128x32x32x64-3x3-128",  # ResNet-18 CIFAR, stage 2's first conv
    "128x32x32x64-1x1-128",  # and its projection
    "32x224x224x3-7x7-64",  # ImageNet's stem (kept on lax's: slower by phases)
)


def parse(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    lhs, kernel, out = text.split("-")
    n, h, w, c = (int(d) for d in lhs.split("x"))
    kh, kw = (int(d) for d in kernel.split("x"))
    return (n, h, w, c), (kh, kw, c, int(out))


def gradients(lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...]) -> dict:
    """The layer's output shape and its input gradient, lax's and by phases, as f(dy, w)."""
    pads = jax.lax.padtype_to_pads(lhs_shape[1:3], rhs_shape[:2], (2, 2), "SAME")
    x = jnp.zeros(lhs_shape, jnp.float32)

    def conv(x, w):
        return jax.lax.conv_general_dilated(
            x, w, (2, 2), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    return jax.eval_shape(conv, x, jnp.zeros(rhs_shape)).shape, {
        "lax": jax.jit(lambda dy, w: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0]),
        "phases": jax.jit(
            lambda dy, w: cpu_conv._input_grad_by_phases(dy, w, lhs_shape, (2, 2), pads)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default=",".join(DEFAULT), help="NxHxWxC-KxK-O,...")
    parser.add_argument("--repeats", type=int, default=10, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print(f"{jax.devices()[0].device_kind}; median ms of {args.rounds} rounds")
    ratios = []
    for text in args.layers.split(","):
        lhs_shape, rhs_shape = parse(text)
        out_shape, grads = gradients(lhs_shape, rhs_shape)
        w = jnp.asarray(rng.standard_normal(rhs_shape) * 0.1, jnp.float32)
        dy = jnp.asarray(rng.standard_normal(out_shape), jnp.float32)
        expected, got = (np.asarray(g(dy, w)) for g in grads.values())
        error = np.abs(got - expected).max() / np.abs(expected).max()
        if error > 1e-4:
            raise SystemExit(f"{text}: the phases' gradient differs from lax's by {error:.1e}")
        times: dict[str, list[float]] = {name: [] for name in grads}
        for _ in range(args.rounds):
            for name, grad in grads.items():
                times[name].append(median_seconds(grad, dy, w, repeats=args.repeats))
        lax_ms, phases_ms = (statistics.median(times[n]) * 1e3 for n in grads)
        ratios.append(f"{text}={lax_ms / phases_ms:.2f}")
        print(f"{text:24s} lax {lax_ms:8.2f} ms  phases {phases_ms:8.2f} ms  error {error:.1e}")
    print("ratios: " + " ".join(ratios))


if __name__ == "__main__":
    main()
