"""MAE (He et al. 2022): the ViT encodes only the visible patches; a light decoder with mask
tokens reconstructs the hidden ones; the loss covers masked patches only.

Masking is done on device, one key per example (argsort of uniform noise), so every
example and every step hides a different set of exactly L - int(L * (1 - ratio)) patches.
"""

import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.models.decoders import MAEDecoder
from jaxssl.models.vit import ViT, patchify


def random_masking(rng: jax.Array, batch: int, length: int, ratio: float):
    """(keep_idx [B, K], mask [B, L] with 1 = hidden) from per-example random permutations."""
    keep = int(length * (1.0 - ratio))
    keys = jax.random.split(rng, batch)
    noise = jax.vmap(lambda k: jax.random.uniform(k, (length,)))(keys)
    keep_idx = jnp.argsort(noise, axis=1)[:, :keep]
    mask = jax.vmap(lambda i: jnp.ones((length,), jnp.float32).at[i].set(0.0))(keep_idx)
    return keep_idx, mask


def patch_targets(images: jax.Array, patch: int, norm_pix: bool) -> jax.Array:
    """Pixels per patch [B, L, p*p*C]; with norm_pix each patch is standardised on its own."""
    target = patchify(images.astype(jnp.float32), patch)
    if norm_pix:
        mean = target.mean(axis=-1, keepdims=True)
        var = target.var(axis=-1, keepdims=True)
        target = (target - mean) / jnp.sqrt(var + 1e-6)
    return target


class MAE(base.Method):
    """Masked autoencoder over a ViT encoder; params = {encoder, decoder, online_probe}."""

    OPTIONS = base.PROBE_OPTIONS

    def __init__(self, config):
        super().__init__(config)
        self.encoder = base.build_encoder(config.model)
        if not isinstance(self.encoder, ViT):
            raise ValueError(
                f"method mae needs a ViT encoder, got model.name={config.model.name!r}"
            )
        ratio = config.method.mask_ratio
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"method.mask_ratio={ratio} must be in [0, 1): e.g. 0.75")
        m = config.method
        size, patch = config.augment.image_size, self.encoder.patch_size
        self.grid = (size // patch, size // patch)
        self.decoder = MAEDecoder(
            grid=self.grid,
            patch_dim=patch * patch * len(config.augment.mean),
            width=m.decoder_width,
            depth=m.decoder_depth,
            num_heads=m.decoder_heads,
            remat=config.model.get("remat", False),
            dtype=self.encoder.dtype,
        )

    def init(self, rng, batch):
        enc_rng, dec_rng, probe_rng = jax.random.split(rng, 3)
        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        keep_idx, _ = random_masking(
            enc_rng, x.shape[0], self.grid[0] * self.grid[1], self.config.method.mask_ratio
        )
        enc = self.encoder.init(enc_rng, x, train=False, keep_idx=keep_idx)["params"]
        (pooled, features) = self.encoder.apply({"params": enc}, x, False, keep_idx)
        params = {
            "encoder": enc,
            "decoder": self.decoder.init(dec_rng, features["tokens"], keep_idx)["params"],
        }
        return params | self.probe.init(probe_rng, pooled, batch), {}

    def reconstruct(self, params, x, rng):
        """(per-patch predictions [B, L, P], mask [B, L], encoder features) of views x."""
        keep_idx, mask = random_masking(
            rng, x.shape[0], self.grid[0] * self.grid[1], self.config.method.mask_ratio
        )
        _, features = self.encoder.apply({"params": params["encoder"]}, x, True, keep_idx)
        pred = self.decoder.apply({"params": params["decoder"]}, features["tokens"], keep_idx)
        return pred, mask, features

    def loss(self, params, model_state, batch, rng, step):
        del step
        view_rng, mask_rng = jax.random.split(rng)
        (x,) = views.batch_views(view_rng, batch["image"], self.augment, 1, batch.get(views.HW))
        pred, mask, features = self.reconstruct(params, x, mask_rng)
        target = patch_targets(x, self.encoder.patch_size, self.config.method.norm_pix_loss)
        ssl = losses.masked_mse(pred, target, mask)
        # The probe reads the masked view's pooled tokens: free; below full-image features.
        probe_loss, metrics = self.probe.loss(params, features["pooled"], batch)
        metrics |= {"ssl_loss": ssl}
        return ssl + probe_loss, (metrics, model_state)
