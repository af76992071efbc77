"""Decoders for the reconstruction family: a conv decoder (AE/VAE) and the MAE decoder."""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.models.vit import DENSE_INIT, Transformer, sincos_2d


class ConvDecoder(nn.Module):
    """Latent [B, Z] -> image [B, S, S, C]: Dense to a coarse map, then 2x transposed convs.

    `widths` run coarse to fine; the first map is S / 2**(len(widths) - 1) wide.
    """

    image_size: int
    channels: int
    widths: Sequence[int] = (128, 64, 32)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, train: bool) -> jax.Array:
        """Returns float32 outputs (pixels or logits, the method decides) [B, S, S, C]."""
        ups = len(self.widths) - 1
        start = self.image_size // 2**ups
        if start * 2**ups != self.image_size or start < 1:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by 2**{ups}: change the "
                "decoder widths or the augmentation image_size"
            )
        x = nn.Dense(start * start * self.widths[0], dtype=self.dtype, name="fc")(
            z.astype(self.dtype)
        )
        x = nn.relu(x).reshape(z.shape[0], start, start, self.widths[0])
        for i, width in enumerate(self.widths[1:]):
            x = nn.ConvTranspose(
                width, (4, 4), (2, 2), padding="SAME", dtype=self.dtype, name=f"up{i}"
            )(x)
            x = nn.relu(
                nn.BatchNorm(
                    use_running_average=not train, momentum=0.9, dtype=self.dtype, name=f"bn{i}"
                )(x)
            )
        x = nn.Conv(self.channels, (3, 3), padding=1, dtype=self.dtype, name="out")(x)
        return x.astype(jnp.float32)


class MAEDecoder(nn.Module):
    """MAE decoder: visible tokens + mask tokens at the hidden positions -> pixels per patch."""

    grid: tuple[int, int]  # patches per column, per row
    patch_dim: int  # p * p * C
    width: int = 512
    depth: int = 8
    num_heads: int = 16
    mlp_ratio: float = 4.0
    remat: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, visible: jax.Array, keep_idx: jax.Array) -> jax.Array:
        """visible [B, K, D_enc] at positions keep_idx [B, K] -> predictions [B, L, patch_dim]."""
        b = visible.shape[0]
        n = self.grid[0] * self.grid[1]
        x = nn.Dense(self.width, dtype=self.dtype, kernel_init=DENSE_INIT, name="embed")(visible)
        mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width))
        full = jnp.broadcast_to(mask_token.astype(x.dtype), (b, n, self.width))
        full = jax.vmap(lambda f, i, v: f.at[i].set(v))(full, keep_idx, x)
        full = full + jnp.asarray(sincos_2d(*self.grid, self.width), x.dtype)[None]
        full = Transformer(
            self.depth, self.num_heads, self.mlp_ratio, self.remat, self.dtype, name="transformer"
        )(full)
        out = nn.Dense(self.patch_dim, dtype=self.dtype, kernel_init=DENSE_INIT, name="pred")(full)
        return out.astype(jnp.float32)
