"""Convolutional autoencoder: encoder -> linear bottleneck -> conv decoder, MSE or BCE.

Inputs are views from config.augment (mild crops make it a denoising-style AE);
the target is the same view. "mse" regresses normalised pixels; "bce" treats the
decoder output as logits of [0, 1] pixels (Bernoulli likelihood).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.models.decoders import ConvDecoder

RECONSTRUCTIONS = ("mse", "bce")


class ReconstructionNet(nn.Module):
    """encoder -> bottleneck Dense -> (latent sampler) -> decoder."""

    encoder: nn.Module
    bottleneck: nn.Module
    decoder: nn.Module
    sample: bool = False  # VAE: bottleneck gives (mean, log_var); decode a reparameterised z

    def __call__(self, x: jax.Array, train: bool, rng: jax.Array | None = None):
        """(decoder output, {"pooled", "mean", "log_var"?}) for images x."""
        pooled, _ = self.encoder(x, train=train)
        h = self.bottleneck(pooled)
        out = {"pooled": pooled}
        if self.sample:
            mean, log_var = jnp.split(h, 2, axis=-1)
            z = mean
            if rng is not None:  # reparameterisation, one key per example
                eps = jax.vmap(lambda k: jax.random.normal(k, mean.shape[1:]))(
                    jax.random.split(rng, mean.shape[0])
                )
                z = mean + jnp.exp(0.5 * log_var) * eps
            out |= {"mean": mean, "log_var": log_var}
        else:
            z = h
        return self.decoder(z, train=train), out


def unit_pixels(x: jax.Array, augment) -> jax.Array:
    """Normalised view -> [0, 1] pixels (the Bernoulli target)."""
    mean, std = jnp.asarray(augment.mean), jnp.asarray(augment.std)
    return jnp.clip(x * std + mean, 0.0, 1.0)


class Autoencoder(base.Method):
    """Mean per-pixel reconstruction error of the view; params = {encoder, bottleneck, decoder}."""

    OPTIONS = base.PROBE_OPTIONS

    sample = False
    bottleneck_factor = 1

    def __init__(self, config):
        super().__init__(config)
        m = config.method
        if m.reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"method.reconstruction={m.reconstruction!r}; use {RECONSTRUCTIONS}")
        self.augment = config.augment
        self.encoder = base.build_encoder(config.model)
        self.net = ReconstructionNet(
            encoder=self.encoder,
            bottleneck=nn.Dense(m.latent_dim * self.bottleneck_factor),
            decoder=ConvDecoder(
                image_size=config.augment.image_size,
                channels=len(config.augment.mean),
                widths=tuple(m.decoder_widths),
            ),
            sample=self.sample,
        )

    def init(self, rng, batch):
        net_rng, probe_rng = jax.random.split(rng)
        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        variables = self.net.init(net_rng, x, train=False)
        _, out = self.net.apply(variables, x, train=False)
        params = dict(variables["params"]) | self.probe.init(probe_rng, out["pooled"], batch)
        return params, {"batch_stats": variables["batch_stats"]}

    def forward(self, params, model_state, batch, rng):
        """(view, decoder output, latent dict, updated model_state) in train mode."""
        view_rng, z_rng = jax.random.split(rng)
        (x,) = views.batch_views(view_rng, batch["image"], self.augment, 1, batch.get(views.HW))
        net_params = {k: params[k] for k in ("encoder", "bottleneck", "decoder")}
        (recon, out), updates = self.net.apply(
            {"params": net_params, **model_state},
            x,
            train=True,
            rng=z_rng if self.sample else None,
            mutable=["batch_stats"],
        )
        return x, recon, out, {**model_state, **updates}

    def target(self, x: jax.Array) -> jax.Array:
        """What the decoder output is compared with."""
        return unit_pixels(x, self.augment) if self.config.method.reconstruction == "bce" else x

    def loss(self, params, model_state, batch, rng, step):
        del step
        x, recon, out, model_state = self.forward(params, model_state, batch, rng)
        err = losses.reconstruction_error(recon, self.target(x), self.config.method.reconstruction)
        ssl = jnp.mean(err) / x[0].size  # per pixel: comparable across image sizes
        probe_loss, metrics = self.probe.loss(params, out["pooled"], batch)
        metrics |= {"ssl_loss": ssl, "recon_loss": ssl}
        return ssl + probe_loss, (metrics, model_state)
