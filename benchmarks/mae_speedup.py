"""MAE encoder step (forward + backward) with 75% masking vs the same ViT on all patches.

Same batch, same params: ViT-S/4 on 32x32 images (64 patches; 16 visible + cls with
masking). The MAE paper (He et al. 2022, sec. 4) reports about 3x or more for the encoder.
  python benchmarks/mae_speedup.py [--batch 256] [--model vit_small] [--image 32] [--patch 4]
Last line: the speed-up ratio (all patches time / masked time).
"""

import argparse

import jax
import jax.numpy as jnp
from throughput import median_seconds  # benchmarks/ is the script's folder

from jaxssl import models
from jaxssl.methods.mae import random_masking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--model", default="vit_small")
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--patch", type=int, default=4)
    parser.add_argument("--mask_ratio", type=float, default=0.75)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    vit = models.get_model(args.model, patch_size=args.patch, dtype=jnp.dtype(args.dtype))
    x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, args.image, args.image, 3))
    n_patches = (args.image // args.patch) ** 2
    keep_idx, _ = random_masking(jax.random.PRNGKey(1), args.batch, n_patches, args.mask_ratio)
    params = jax.jit(lambda: vit.init(jax.random.PRNGKey(2), x[:2], train=True))()

    def loss(p, images, keep):
        _, features = vit.apply(p, images, True, keep)
        return jnp.mean(jnp.square(features["tokens"].astype(jnp.float32)))

    step = jax.jit(jax.grad(loss))
    full = median_seconds(step, params, x, None, repeats=args.repeats)
    masked = median_seconds(step, params, x, keep_idx, repeats=args.repeats)
    print(
        f"device: {jax.devices()[0].device_kind}  model: {args.model}/{args.patch} "
        f"image: {args.image}  batch: {args.batch}  dtype: {args.dtype}"
    )
    print(f"all {n_patches} patches: {full * 1e3:.1f} ms/step")
    print(
        f"{keep_idx.shape[1]} visible patches ({args.mask_ratio:.0%} masked): "
        f"{masked * 1e3:.1f} ms/step"
    )
    print(f"mae encoder speed-up (all / masked): {full / masked:.2f}x")


if __name__ == "__main__":
    main()
