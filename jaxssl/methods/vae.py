"""VAE (Kingma & Welling 2014) with beta (Higgins et al. 2017): ELBO = recon + beta * KL.

The encoder's pooled features feed a Dense to (mean, log_var) of a diagonal
Gaussian; z = mean + sigma * eps (one key per example). Reconstruction is the
Bernoulli NLL ("bce") or the unit-variance Gaussian NLL 0.5 * ||x - x_hat||^2 ("mse"),
summed over pixels; the KL uses the closed form.
"""

import jax.numpy as jnp

from jaxssl import losses
from jaxssl.methods.autoencoder import Autoencoder


class VAE(Autoencoder):
    """Negative ELBO per example, averaged over the batch."""

    sample = True
    bottleneck_factor = 2  # mean and log-variance

    def loss(self, params, model_state, batch, rng, step):
        del step
        x, recon, out, model_state = self.forward(params, model_state, batch, rng)
        kind = self.config.method.reconstruction
        err = losses.reconstruction_error(recon, self.target(x), kind)
        err = 0.5 * err if kind == "mse" else err
        kl = losses.gaussian_kl(out["mean"], out["log_var"])
        neg_elbo = jnp.mean(err + self.config.method.beta * kl)
        probe_loss, metrics = self.probe.loss(params, out["pooled"], batch)
        metrics |= {
            "ssl_loss": neg_elbo,
            "neg_elbo": neg_elbo,
            "recon_loss": jnp.mean(err),
            "kl": jnp.mean(kl),
        }
        return neg_elbo + probe_loss, (metrics, model_state)
