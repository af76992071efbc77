"""beta-VAE (beta = 1: the plain ELBO) on scikit-learn's bundled handwritten digits.

Command (2-core CPU, a few minutes including evaluation):
  python -m jaxssl.main --config configs/vae_digits.py --workdir runs/vae_digits
Random-init baseline: the same command with --config.total_steps=0.
Results (knn_top1 / linear_probe_top1 / online_probe_test_top1) are in README.md.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 256
    c.total_steps = 300
    c.log_every = 25
    c.checkpoint_every = 150

    c.model.name = "cnn_small"
    c.model.widths = (32, 64, 128)

    c.method.name = "vae"
    c.method.beta = 1.0
    c.method.latent_dim = 16
    c.method.decoder_widths = (128, 64, 32)  # 4x4 -> 8x8 -> 16x16
    c.method.reconstruction = "bce"
    c.method.online_probe = True

    # Mild crops only: reconstruct what was seen.
    c.augment = augment_config("digits")
    c.augment.crop_scale = (0.8, 1.0)
    c.augment.jitter_prob = 0.0
    c.augment.blur_prob = 0.0

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 50

    c.eval.probe_steps = 1000
    return c
