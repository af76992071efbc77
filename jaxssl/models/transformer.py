"""Pre-LayerNorm Transformer encoder (bidirectional) and decoder (causal) over token ids.

Returns (pooled, {"pooled", "tokens"}) like every encoder here, so probes and the fine-tune step
read the pooled representation; language-model heads call `logits` for output-embedding
scores (tied to the input embedding, or a separate matrix).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

# width, depth, heads, mlp_dim. base = BERT-base / GPT-2 small; small = BERT-small (Turc 2019).
PRESETS = {
    "tiny": (128, 4, 4, 512),
    "small": (512, 4, 8, 2048),
    "base": (768, 12, 12, 3072),
}


class Block(nn.Module):
    """x + Attn(LN(x)); x + MLP(LN(x)), attention via jax.nn.dot_product_attention."""

    num_heads: int
    mlp_dim: int
    causal: bool
    dropout: float
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, train: bool) -> jax.Array:
        b, t, d = x.shape
        h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x)
        qkv = nn.DenseGeneral(
            (3, self.num_heads, d // self.num_heads), dtype=self.dtype, name="qkv"
        )(h)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        # mask: [B, 1, 1, T] keys that are real tokens; is_causal adds the lower triangle.
        att = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=self.causal)
        att = nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, name="out")(att)
        x = x + nn.Dropout(self.dropout, deterministic=not train)(att)
        h = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        h = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(h)
        h = nn.Dense(d, dtype=self.dtype, name="mlp_out")(nn.gelu(h))
        return x + nn.Dropout(self.dropout, deterministic=not train)(h)


class Transformer(nn.Module):
    """Token + learned position embeddings -> pre-LN blocks -> final LayerNorm."""

    vocab_size: int = 262
    width: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_dim: int = 512
    max_len: int = 128
    causal: bool = False
    dropout: float = 0.0
    tie_embeddings: bool = True
    pooling: str = "mean"  # "mean" over real tokens, or "first" ([CLS] / BERT)
    remat: bool = False
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        init = nn.initializers.normal(0.02)
        self.embed = nn.Embed(self.vocab_size, self.width, embedding_init=init, name="embed")
        self.pos_embed = self.param("pos_embed", init, (self.max_len, self.width))
        block = nn.remat(Block, static_argnums=(3,)) if self.remat else Block
        self.blocks = [
            block(
                self.num_heads,
                self.mlp_dim,
                self.causal,
                self.dropout,
                self.dtype,
                name=f"block{i}",
            )
            for i in range(self.depth)
        ]
        self.ln_final = nn.LayerNorm(dtype=self.dtype, name="ln_final")
        self.drop = nn.Dropout(self.dropout)
        if self.tie_embeddings:
            self.out_bias = self.param("out_bias", nn.initializers.zeros, (self.vocab_size,))
        else:
            self.out = nn.Dense(self.vocab_size, kernel_init=init, name="out")

    def __call__(
        self, x: jax.Array, train: bool = False, attention_mask: jax.Array | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """x: int32 token ids [B, T]; attention_mask: 1 for real tokens (default: all)."""
        b, t = x.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} > max_len {self.max_len}: raise model.max_len")
        valid = jnp.ones((b, t), bool) if attention_mask is None else attention_mask.astype(bool)
        h = self.embed(x) + self.pos_embed[None, :t]
        h = self.drop(h.astype(self.dtype), deterministic=not train)
        mask = valid[:, None, None, :]
        for blk in self.blocks:
            h = blk(h, mask, train)
        tokens = self.ln_final(h)
        if self.pooling == "first":
            pooled = tokens[:, 0]
        else:
            w = valid.astype(tokens.dtype)[..., None]
            pooled = (tokens * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
        return pooled, {"pooled": pooled, "tokens": tokens}

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Vocabulary scores (float32) of hidden states [..., width]."""
        if self.tie_embeddings:
            return self.embed.attend(hidden.astype(jnp.float32)) + self.out_bias
        return self.out(hidden.astype(jnp.float32))


def transformer(preset: str, **kwargs) -> Transformer:
    """A Transformer with the preset's width/depth/heads/mlp_dim; kwargs override them."""
    width, depth, heads, mlp = PRESETS[preset]
    dims = {"width": width, "depth": depth, "num_heads": heads, "mlp_dim": mlp}
    if "dtype" in kwargs and isinstance(kwargs["dtype"], str):
        kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
    return Transformer(**{**dims, **kwargs})


MODEL_FACTORIES = {f"transformer_{p}": functools.partial(transformer, p) for p in PRESETS}
