"""Vision Transformer (Dosovitskiy et al. 2021) with MAE-style visible-patch encoding.

Attention: separate query/key/value projections over transformer.attend (the one attention
function of the Transformers here).
"""

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxssl.models.transformer import attend

# MAE / big_vision initialisation: xavier-uniform dense kernels, zero biases.
DENSE_INIT = nn.initializers.xavier_uniform()
POSITIONS = ("sincos", "learned", "sincos_mae")
POOLS = ("cls", "mean")


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
    """Fixed 2-D sin-cos position table [height * width, dim] (MAE / MoCo v3)."""
    if dim % 4:
        raise ValueError(f"sin-cos positions need width % 4 == 0, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = []
    for grid in (ys.reshape(-1), xs.reshape(-1)):
        angles = grid[:, None] * omega[None, :]
        out += [np.sin(angles), np.cos(angles)]
    return np.concatenate(out, axis=1).astype(np.float32)


def sincos_2d_mae(height: int, width: int, dim: int) -> np.ndarray:
    """The table of the official MAE code and its checkpoints (facebook/vit-mae-*): the
    x-frequency half first, [sin_x | cos_x | sin_y | cos_y], where sincos_2d puts y first."""
    table = sincos_2d(height, width, dim)
    return np.concatenate([table[:, dim // 2 :], table[:, : dim // 2]], axis=1)


def patchify(images: jax.Array, patch: int) -> jax.Array:
    """[B, H, W, C] -> [B, (H/p)*(W/p), p*p*C], patches in row-major order."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // patch, patch, w // patch, patch, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: jax.Array, patch: int, height: int, width: int) -> jax.Array:
    """Inverse of patchify: [B, L, p*p*C] -> [B, H, W, C]."""
    b, _, d = patches.shape
    c = d // (patch * patch)
    x = patches.reshape(b, height // patch, width // patch, patch, patch, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, height, width, c)


class Attention(nn.Module):
    """Multi-head self-attention through transformer.attend."""

    num_heads: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, T, D] -> [B, T, D]."""
        d = x.shape[-1]
        head_dim = d // self.num_heads
        dense = partial(
            nn.DenseGeneral,
            features=(self.num_heads, head_dim),
            dtype=self.dtype,
            kernel_init=DENSE_INIT,
        )
        q, k, v = (dense(name=n)(x) for n in ("query", "key", "value"))
        out = attend(q, k, v, None)
        return nn.DenseGeneral(
            d, axis=(-2, -1), dtype=self.dtype, kernel_init=DENSE_INIT, name="out"
        )(out)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    num_heads: int
    mlp_ratio: float = 4.0
    dtype: Any = jnp.float32
    ln_eps: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, T, D] -> [B, T, D]."""
        d = x.shape[-1]
        norm = partial(nn.LayerNorm, epsilon=self.ln_eps, dtype=self.dtype)
        x = x + Attention(self.num_heads, self.dtype, name="attn")(norm(name="norm1")(x))
        y = norm(name="norm2")(x)
        y = nn.Dense(int(d * self.mlp_ratio), dtype=self.dtype, kernel_init=DENSE_INIT)(y)
        y = nn.Dense(d, dtype=self.dtype, kernel_init=DENSE_INIT)(nn.gelu(y, approximate=False))
        return x + y


class Transformer(nn.Module):
    """`depth` blocks then a final LayerNorm; nn.remat per block trades FLOPs for memory."""

    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    remat: bool = False
    dtype: Any = jnp.float32
    ln_eps: float = 1e-6  # LayerNorm epsilon (HF ViT / ViT-MAE checkpoints: 1e-12)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, T, D] -> [B, T, D]."""
        block = nn.remat(Block) if self.remat else Block
        for i in range(self.depth):
            x = block(self.num_heads, self.mlp_ratio, self.dtype, self.ln_eps, name=f"block{i}")(x)
        return nn.LayerNorm(epsilon=self.ln_eps, dtype=self.dtype, name="norm")(x)


class ViT(nn.Module):
    """ViT encoder returning (pooled [B, D], {"pooled", "tokens"}).

    `keep_idx` [B, K] (MAE) selects the visible patches after the position
    embedding, so the transformer's sequence length is K (+1 with a cls token).
    "tokens" are the encoded patch tokens (without the cls token).
    """

    patch_size: int = 16
    width: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    pos_embedding: str = "sincos"  # or "learned", or "sincos_mae" (MAE checkpoints' layout)
    pool: str = "cls"  # or "mean"
    remat: bool = False
    dtype: Any = jnp.float32  # computation dtype; params stay float32
    ln_eps: float = 1e-6  # LayerNorm epsilon (HF ViT / ViT-MAE checkpoints: 1e-12)

    @property
    def features_dim(self) -> int:
        """Width of the pooled representation."""
        return self.width

    def _check(self) -> None:
        if self.pos_embedding not in POSITIONS:
            raise ValueError(f"pos_embedding={self.pos_embedding!r}; valid: {POSITIONS}")
        if self.pool not in POOLS:
            raise ValueError(f"pool={self.pool!r}; valid: {POOLS}")
        if self.width % self.num_heads:
            raise ValueError(f"width={self.width} is not divisible by num_heads={self.num_heads}")

    @nn.compact
    def __call__(
        self, x: jax.Array, train: bool, keep_idx: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Encode images [B, H, W, C] (H, W multiples of patch_size)."""
        del train  # no dropout / batch norm: train and eval are the same function
        self._check()
        p = self.patch_size
        if x.shape[1] % p or x.shape[2] % p:
            raise ValueError(f"image size {x.shape[1:3]} is not a multiple of patch_size={p}")
        tokens = nn.Conv(
            self.width,
            (p, p),
            strides=(p, p),
            padding="VALID",
            dtype=self.dtype,
            name="patch_embed",
        )(x.astype(self.dtype))
        b, gh, gw, d = tokens.shape
        tokens = tokens.reshape(b, gh * gw, d)
        if self.pos_embedding in ("sincos", "sincos_mae"):
            table = sincos_2d if self.pos_embedding == "sincos" else sincos_2d_mae
            pos = jnp.asarray(table(gh, gw, d))[None]
        else:
            pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1, gh * gw, d))
        tokens = tokens + pos.astype(self.dtype)
        if keep_idx is not None:
            tokens = jnp.take_along_axis(tokens, keep_idx[..., None], axis=1)
        if self.pool == "cls":
            cls = self.param("cls", nn.initializers.normal(0.02), (1, 1, d))
            cls = jnp.broadcast_to(cls, (b, 1, d)).astype(self.dtype)
            tokens = jnp.concatenate([cls, tokens], axis=1)
        tokens = Transformer(
            self.depth,
            self.num_heads,
            self.mlp_ratio,
            self.remat,
            self.dtype,
            self.ln_eps,
            name="transformer",
        )(tokens)
        if self.pool == "cls":
            pooled, patch_tokens = tokens[:, 0], tokens[:, 1:]
        else:
            pooled, patch_tokens = jnp.mean(tokens, axis=1), tokens
        pooled = pooled.astype(jnp.float32)
        return pooled, {"pooled": pooled, "tokens": patch_tokens}


_PRESETS = {
    "vit_tiny": dict(width=192, depth=12, num_heads=3),
    "vit_small": dict(width=384, depth=12, num_heads=6),
    "vit_base": dict(width=768, depth=12, num_heads=12),
}


def preset(name: str):
    """A factory for the named preset; keyword overrides (patch_size, dtype ...) pass through."""

    def build(**kwargs) -> ViT:
        return ViT(**(_PRESETS[name] | kwargs))

    build.__name__ = name
    return build
