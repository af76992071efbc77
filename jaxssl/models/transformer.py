"""Transformer encoder (bidirectional) and decoder (causal) over token ids.

Pre-LayerNorm by default (GPT-2 / modern), post-LayerNorm with `norm="post"` (BERT). Returns
(pooled, {"pooled", "tokens"}) like every encoder here, so probes and the fine-tune step read the
pooled representation; language-model heads call `logits` for output-embedding scores (tied to
the input embedding, or a separate matrix). The options a public checkpoint family needs
(jaxssl/interop/hf_text.py maps BERT and GPT-2 onto them) are module attributes whose defaults
keep jaxssl's own models and their param paths unchanged.

Generation: `decode` runs new tokens against a key/value cache (`init_cache`: fixed-shape
arrays, one (k, v) pair per block), so a prefill of the prompt and then one token per step
compile to fixed shapes under jit (jaxssl/generate.py).
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
NORMS = ("pre", "post")
# "gelu_tanh" is flax's default nn.gelu (GPT-2's gelu_new); "gelu" the exact erf form (BERT).
ACTIVATIONS = {
    "gelu_tanh": functools.partial(nn.gelu, approximate=True),
    "gelu": functools.partial(nn.gelu, approximate=False),
    "relu": nn.relu,
}
POOLINGS = ("mean", "first")

KVCache = list[tuple[jax.Array, jax.Array]]  # per block: keys, values [B, S, heads, head_dim]


def attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Softmax attention of q [B, T, heads, d] over k, v [B, S, heads, d]; mask: keys seen.

    flax's einsum form: weights softmaxed in float32, then in v's dtype for the weighted sum (a
    bfloat16 matmul under bfloat16, as jax.nn.dot_product_attention does). Not that function:
    in jax 0.10 its default (XLA) path vmaps over query groups, and the extra axis costs XLA:CPU
    transposes and slow reductions: 7% of the causal LM step (benchmarks/README.md).
    """
    weights = nn.dot_product_attention_weights(q, k, mask=mask, force_fp32_for_softmax=True)
    return jnp.einsum("...hqk,...khd->...qhd", weights.astype(v.dtype), v)


class Block(nn.Module):
    """Pre-LN: x + Attn(LN(x)); x + MLP(LN(x)). Post-LN (BERT): LN(x + Attn(x)); LN(x + MLP(x)).

    `mask` [B, 1, T, S] or broadcastable: the keys each query sees (the model combines padding
    and causality). With `cache` ((k, v) of the whole sequence) the block writes this call's
    keys/values at `pos` and attends over the cache: returns (x, cache).
    """

    num_heads: int
    mlp_dim: int
    dropout: float
    dtype: jnp.dtype
    norm: str = "pre"
    activation: str = "gelu_tanh"
    ln_eps: float = 1e-6

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        mask: jax.Array,
        train: bool,
        cache: tuple[jax.Array, jax.Array] | None = None,
        pos: jax.Array | None = None,
    ):
        b, t, d = x.shape
        post = self.norm == "post"
        ln = functools.partial(nn.LayerNorm, epsilon=self.ln_eps, dtype=self.dtype)
        h = x if post else ln(name="ln_attn")(x)
        qkv = nn.DenseGeneral(
            (3, self.num_heads, d // self.num_heads), dtype=self.dtype, name="qkv"
        )(h)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cache is not None:
            start = (0, pos, 0, 0)
            keys = jax.lax.dynamic_update_slice(cache[0], k.astype(cache[0].dtype), start)
            values = jax.lax.dynamic_update_slice(cache[1], v.astype(cache[1].dtype), start)
            cache = (keys, values)
            k, v = keys.astype(q.dtype), values.astype(q.dtype)
        att = attend(q, k, v, mask)
        att = nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, name="out")(att)
        x = x + nn.Dropout(self.dropout, deterministic=not train)(att)
        if post:
            x = ln(name="ln_attn")(x)
        h = x if post else ln(name="ln_mlp")(x)
        h = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(h)
        h = nn.Dense(d, dtype=self.dtype, name="mlp_out")(ACTIVATIONS[self.activation](h))
        x = x + nn.Dropout(self.dropout, deterministic=not train)(h)
        if post:
            x = ln(name="ln_mlp")(x)
        return x if cache is None else (x, cache)


class Transformer(nn.Module):
    """Token (+ token-type) + learned position embeddings -> blocks -> LayerNorm.

    Pre-LN ends with a final LayerNorm (`ln_final`); post-LN normalises the embeddings
    (`ln_embed`) instead. `lm_transform` adds BERT's prediction-head transform (Dense -> act
    -> LayerNorm) in `logits`; `output_bias=False` drops the output bias (GPT-2's LM head).
    """

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
    norm: str = "pre"  # "pre" (GPT-2, jaxssl) or "post" (BERT)
    activation: str = "gelu_tanh"  # MLP activation: gelu_tanh | gelu (exact, BERT) | relu
    ln_eps: float = 1e-6  # LayerNorm epsilon (BERT 1e-12, GPT-2 1e-5)
    type_vocab_size: int = 0  # > 0: token-type (segment) embeddings, BERT's 2
    output_bias: bool = True  # a bias on the vocabulary scores (BERT yes, GPT-2 no)
    lm_transform: bool = False  # BERT's MLM transform before the output embedding

    def __post_init__(self) -> None:
        # A bad option fails at construction, before anything is traced or compiled.
        self._check()
        super().__post_init__()

    def _check(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        for key, value, allowed in (
            ("norm", self.norm, NORMS),
            ("activation", self.activation, tuple(ACTIVATIONS)),
            ("pooling", self.pooling, POOLINGS),
        ):
            if value not in allowed:
                raise ValueError(f"model.{key}={value!r}: use one of {', '.join(allowed)}")

    def setup(self):
        init = nn.initializers.normal(0.02)
        self.embed = nn.Embed(self.vocab_size, self.width, embedding_init=init, name="embed")
        self.pos_embed = self.param("pos_embed", init, (self.max_len, self.width))
        if self.type_vocab_size:
            self.type_embed = nn.Embed(
                self.type_vocab_size, self.width, embedding_init=init, name="type_embed"
            )
        block = nn.remat(Block, static_argnums=(3,)) if self.remat else Block
        self.blocks = [
            block(
                self.num_heads,
                self.mlp_dim,
                self.dropout,
                self.dtype,
                self.norm,
                self.activation,
                self.ln_eps,
                name=f"block{i}",
            )
            for i in range(self.depth)
        ]
        ln = functools.partial(nn.LayerNorm, epsilon=self.ln_eps, dtype=self.dtype)
        if self.norm == "post":
            self.ln_embed = ln(name="ln_embed")
        else:
            self.ln_final = ln(name="ln_final")
        self.drop = nn.Dropout(self.dropout)
        if self.lm_transform:
            self.lm_dense = nn.Dense(self.width, kernel_init=init, name="lm_dense")
            self.lm_ln = nn.LayerNorm(epsilon=self.ln_eps, name="lm_ln")
        if self.tie_embeddings:
            if self.output_bias:
                self.out_bias = self.param("out_bias", nn.initializers.zeros, (self.vocab_size,))
        else:
            self.out = nn.Dense(
                self.vocab_size, use_bias=self.output_bias, kernel_init=init, name="out"
            )

    def _embed(self, x: jax.Array, positions: jax.Array, token_type_ids, train: bool):
        h = self.embed(x) + positions
        if self.type_vocab_size:
            types = jnp.zeros_like(x) if token_type_ids is None else token_type_ids
            h = h + self.type_embed(types)
        h = h.astype(self.dtype)
        if self.norm == "post":
            h = self.ln_embed(h)
        return self.drop(h, deterministic=not train)

    def __call__(
        self,
        x: jax.Array,
        train: bool = False,
        attention_mask: jax.Array | None = None,
        token_type_ids: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """x: int32 token ids [B, T]; attention_mask: 1 for real tokens (default: all)."""
        b, t = x.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} > max_len {self.max_len}: raise model.max_len")
        valid = jnp.ones((b, t), bool) if attention_mask is None else attention_mask.astype(bool)
        h = self._embed(x, self.pos_embed[None, :t], token_type_ids, train)
        mask = valid[:, None, None, :]  # [B, 1, 1, T]: keys that are real tokens
        if self.causal:
            mask = mask & jnp.tril(jnp.ones((t, t), bool))
        for blk in self.blocks:
            h = blk(h, mask, train)
        tokens = h if self.norm == "post" else self.ln_final(h)
        if self.pooling == "first":
            pooled = tokens[:, 0]
        else:
            w = valid.astype(tokens.dtype)[..., None]
            pooled = (tokens * w).sum(1) / jnp.maximum(w.sum(1), 1.0)
        return pooled, {"pooled": pooled, "tokens": tokens}

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Vocabulary scores (float32) of hidden states [..., width]."""
        hidden = hidden.astype(jnp.float32)
        if self.lm_transform:
            hidden = self.lm_ln(ACTIVATIONS[self.activation](self.lm_dense(hidden)))
        if self.tie_embeddings:
            scores = self.embed.attend(hidden)
            return scores + self.out_bias if self.output_bias else scores
        return self.out(hidden)

    def decode(self, x: jax.Array, cache: KVCache, pos: jax.Array) -> tuple[jax.Array, KVCache]:
        """Logits [B, T, V] of tokens x [B, T] at positions pos..pos+T-1, reading and extending
        the cache (filled for positions < pos). A causal decoder only: the prompt (prefill,
        pos=0) and then one token per step give the logits a full forward pass gives."""
        if not self.causal:
            raise ValueError("decode with a key/value cache needs a causal model (model.causal)")
        t, length = x.shape[1], cache[0][0].shape[1]
        positions = jax.lax.dynamic_slice_in_dim(self.pos_embed, pos, t)[None]
        h = self._embed(x, positions, None, train=False)
        query_pos = pos + jnp.arange(t)
        mask = (jnp.arange(length)[None, :] <= query_pos[:, None])[None, None]
        new_cache = []
        for blk, layer_cache in zip(self.blocks, cache, strict=True):
            h, layer_cache = blk(h, mask, False, layer_cache, pos)
            new_cache.append(layer_cache)
        tokens = h if self.norm == "post" else self.ln_final(h)
        return self.logits(tokens), new_cache


def init_cache(model: Transformer, batch: int, length: int) -> KVCache:
    """An empty key/value cache of `model` for `length` positions (<= max_len), `batch` rows."""
    if length > model.max_len:
        raise ValueError(f"cache length {length} > model.max_len {model.max_len}")
    shape = (batch, length, model.num_heads, model.width // model.num_heads)
    return [(jnp.zeros(shape, model.dtype), jnp.zeros(shape, model.dtype))] * model.depth


def transformer(preset: str, **kwargs) -> Transformer:
    """A Transformer with the preset's width/depth/heads/mlp_dim; kwargs override them."""
    width, depth, heads, mlp = PRESETS[preset]
    dims = {"width": width, "depth": depth, "num_heads": heads, "mlp_dim": mlp}
    if "dtype" in kwargs and isinstance(kwargs["dtype"], str):
        kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
    return Transformer(**{**dims, **kwargs})


MODEL_FACTORIES = {f"transformer_{p}": functools.partial(transformer, p) for p in PRESETS}
