"""I-JEPA (Assran et al. 2023): predict the representations of image blocks from a context block.

Per example and step, on device: method.num_targets target blocks (area method.target_scale
of the patch grid, aspect method.target_aspect, each randomly transposed) and one context
block (area method.context_scale, square), from which the target patches are removed. The
context encoder (the ViT's visible-only path, as MAE's) sees method.context_keep x L of the
remaining context patches; a narrow ViT predictor, given the context tokens and one mask
token per target position (sin-cos positions), predicts each target block; the targets are
the EMA target encoder's layer-normed outputs on the whole image (model_state["target"], no
gradient, momentum rising linearly from method.momentum to 1). Loss: losses.ijepa (smooth L1,
as the official code, or method.loss="mse").

Static shapes under jit, so two simplifications of the official mask collator: block sizes
are fixed by the config (the official one draws a size per batch from a scale range; pick a
scale inside that range) and the context keeps a fixed number of patches, cycling through the
remaining ones if an example has fewer (the official one truncates to the batch minimum).
Not here either: the official weight-decay schedule (0.04 -> 0.4), as for DINO.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base, ema
from jaxssl.models.vit import DENSE_INIT, Transformer, ViT, sincos_2d


def block_size(grid: tuple[int, int], scale: float, aspect: float) -> tuple[int, int]:
    """(height, width) in patches of a block of about scale x the grid's area, h / w ~ aspect."""
    area = scale * grid[0] * grid[1]
    h = min(max(1, round(math.sqrt(area * aspect))), grid[0])
    w = min(max(1, round(area / h)), grid[1])
    return h, w


def _block(key: jax.Array, grid: tuple[int, int], size: tuple[int, int], flip: bool):
    """Flat patch indices [h * w] of one block at a random position (maybe transposed)."""
    k_top, k_left, k_flip = jax.random.split(key, 3)
    h, w = size
    transpose = jax.random.bernoulli(k_flip) if flip and h != w else jnp.asarray(False)
    bh, bw = jnp.where(transpose, w, h), jnp.where(transpose, h, w)
    top = jax.random.randint(k_top, (), 0, grid[0] - bh + 1)
    left = jax.random.randint(k_left, (), 0, grid[1] - bw + 1)
    i = jnp.arange(h * w)
    return (top + i // bw) * grid[1] + left + i % bw


def sample_masks(
    key: jax.Array,
    batch: int,
    grid: tuple[int, int],
    num_targets: int,
    target: tuple[int, int],
    context: tuple[int, int],
    keep: int,
) -> tuple[jax.Array, jax.Array]:
    """(context indices [B, keep], target indices [B, num_targets, h * w]), one key per example.

    Context indices lie in the context block and in no target block; an example with fewer
    than `keep` such patches repeats them.
    """
    length = grid[0] * grid[1]

    def one(k):
        keys = jax.random.split(k, num_targets + 2)
        targets = jnp.stack([_block(keys[i], grid, target, True) for i in range(num_targets)])
        in_context = jnp.zeros((length,), bool).at[_block(keys[-2], grid, context, False)].set(True)
        allowed = in_context.at[targets.reshape(-1)].set(False)
        priority = jax.random.uniform(keys[-1], (length,)) + allowed  # allowed first, shuffled
        order = jnp.argsort(-priority)
        count = jnp.maximum(jnp.sum(allowed), 1)
        return order[jnp.arange(keep) % count], targets

    return jax.vmap(one)(jax.random.split(key, batch))


class Predictor(nn.Module):
    """Narrow ViT: context tokens + mask tokens at the target positions -> target predictions."""

    grid: tuple[int, int]
    out_dim: int
    width: int = 384
    depth: int = 12
    num_heads: int = 12
    remat: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, context: jax.Array, context_idx: jax.Array, target_idx: jax.Array):
        """context [B, K, D] at context_idx [B, K]; target_idx [B, M, T] -> [B, M, T, out_dim]."""
        b, m, t = target_idx.shape
        k = context.shape[1]
        pos = jnp.asarray(sincos_2d(*self.grid, self.width), self.dtype)
        x = nn.Dense(self.width, dtype=self.dtype, kernel_init=DENSE_INIT, name="embed")(context)
        x = x + pos[context_idx]
        mask_token = self.param("mask_token", nn.initializers.normal(0.02), (self.width,))
        queries = mask_token.astype(self.dtype) + pos[target_idx]  # [B, M, T, W]
        # Each target block is predicted on its own: the context is repeated per block.
        x = jnp.broadcast_to(x[:, None], (b, m, k, self.width)).reshape(b * m, k, self.width)
        seq = jnp.concatenate([x, queries.reshape(b * m, t, self.width)], axis=1)
        seq = Transformer(
            self.depth, self.num_heads, remat=self.remat, dtype=self.dtype, name="transformer"
        )(seq)
        out = nn.Dense(self.out_dim, dtype=self.dtype, kernel_init=DENSE_INIT, name="proj")(
            seq[:, k:]
        )
        return out.reshape(b, m, t, self.out_dim).astype(jnp.float32)


class IJEPA(base.Method):
    """params = {encoder (context), predictor, online_probe}; model_state = {target: {encoder}}."""

    OPTIONS = {
        **base.PROBE_OPTIONS,
        "loss": base.Option("smooth_l1", "smooth_l1 | mse between predictions and targets"),
        "target_aspect": base.Option(1.0, "aspect ratio of the target blocks"),
    }

    def __init__(self, config):
        super().__init__(config)
        m = config.method
        self.encoder = base.build_encoder(config.model)
        if not isinstance(self.encoder, ViT):
            raise ValueError(
                f"method ijepa needs a ViT encoder, got model.name={config.model.name!r}"
            )
        size, patch = config.augment.image_size, self.encoder.patch_size
        if size % patch:
            raise ValueError(f"augment.image_size={size} is not a multiple of patch_size={patch}")
        self.grid = (size // patch, size // patch)
        length = self.grid[0] * self.grid[1]
        for key in ("target_scale", "context_scale", "context_keep"):
            if not 0.0 < m[key] <= 1.0:
                raise ValueError(f"method.{key}={m[key]} must be in (0, 1]")
        if m.pred_width % 4 or m.pred_width % m.pred_heads:
            raise ValueError(
                f"method.pred_width={m.pred_width} must be a multiple of 4 (sin-cos positions) "
                f"and of method.pred_heads={m.pred_heads}"
            )
        if self.option(config, "loss") not in ("smooth_l1", "mse"):
            raise ValueError(f"method.loss={m.loss!r}; valid: 'smooth_l1', 'mse'")
        aspect = self.option(config, "target_aspect")
        self.target_block = block_size(self.grid, m.target_scale, aspect)
        if max(self.target_block) > min(self.grid):
            raise ValueError(f"target block {self.target_block} does not fit grid {self.grid}")
        self.context_block = block_size(self.grid, m.context_scale, 1.0)
        self.keep = max(1, round(m.context_keep * length))
        free = math.prod(self.context_block) - m.num_targets * math.prod(self.target_block)
        if free < 1:
            raise ValueError(
                f"the context block {self.context_block} can be covered by {m.num_targets} "
                f"target blocks {self.target_block}: lower method.num_targets or target_scale"
            )
        self.predictor = Predictor(
            grid=self.grid,
            out_dim=self.encoder.width,
            width=m.pred_width,
            depth=m.pred_depth,
            num_heads=m.pred_heads,
            remat=config.model.get("remat", False),
            dtype=self.encoder.dtype,
        )

    def masks(self, rng: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        """(context indices [B, K], target indices [B, M, T]) for this config."""
        m = self.config.method
        return sample_masks(
            rng, batch, self.grid, m.num_targets, self.target_block, self.context_block, self.keep
        )

    def init(self, rng, batch):
        enc_rng, mask_rng, pred_rng, probe_rng = jax.random.split(rng, 4)
        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        context_idx, target_idx = self.masks(mask_rng, x.shape[0])
        enc = self.encoder.init(enc_rng, x, train=False, keep_idx=context_idx)["params"]
        pooled, features = self.encoder.apply({"params": enc}, x, False, context_idx)
        pred = self.predictor.init(pred_rng, features["tokens"], context_idx, target_idx)
        params = {"encoder": enc, "predictor": pred["params"]}
        params |= self.probe.init(probe_rng, pooled, batch)
        return params, {"target": {"encoder": jax.tree.map(jnp.copy, enc)}}

    def momentum(self, step: jax.Array) -> jax.Array:
        """Linear from method.momentum at step 0 to 1 at the end (the official schedule)."""
        base_m = self.config.method.momentum
        progress = jnp.clip(step / max(self.config.total_steps, 1), 0.0, 1.0)
        return base_m + (1.0 - base_m) * progress

    def loss(self, params, model_state, batch, rng, step):
        view_rng, mask_rng = jax.random.split(rng)
        (x,) = views.batch_views(view_rng, batch["image"], self.augment, 1, batch.get(views.HW))
        context_idx, target_idx = self.masks(mask_rng, x.shape[0])
        _, context = self.encoder.apply({"params": params["encoder"]}, x, True, context_idx)
        _, full = self.encoder.apply({"params": model_state["target"]["encoder"]}, x, True)
        tokens = jax.lax.stop_gradient(full["tokens"])  # [B, L, D]
        targets = jax.vmap(lambda tok, idx: tok[idx])(tokens, target_idx)  # [B, M, T, D]
        pred = self.predictor.apply(
            {"params": params["predictor"]}, context["tokens"], context_idx, target_idx
        )
        ssl = losses.ijepa(pred, targets, self.option(self.config, "loss"))
        # The probe reads the context view's pooled tokens (free; below full-image features).
        probe_loss, metrics = self.probe.loss(params, context["pooled"], batch)
        metrics |= {"ssl_loss": ssl, "momentum": self.momentum(step)}
        return ssl + probe_loss, (metrics, model_state)

    def after_update(self, params, model_state, step):
        target = model_state["target"]["encoder"]
        new = ema.ema_update(target, params["encoder"], self.momentum(step))
        return {**model_state, "target": {"encoder": new}}
