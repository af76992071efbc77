"""MAE with a small ViT (patch 4 on 16x16 upsampled digits: 16 patches, 4 visible).

Command (2-core CPU, a few minutes including evaluation):
  python -m jaxssl.main --config configs/mae_digits.py --workdir runs/mae_digits
Random-init baseline: the same command with --config.total_steps=0.
Results (knn_top1 / linear_probe_top1 / online_probe_test_top1) are in README.md.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 256
    c.total_steps = 600
    c.log_every = 25
    c.checkpoint_every = 200

    c.model.name = "vit"
    c.model.patch_size = 4
    c.model.width = 128
    c.model.depth = 4
    c.model.num_heads = 4
    c.model.pool = "mean"  # the decoder ignores a cls token, so mean-pool the patch tokens
    c.model.pos_embedding = "sincos"

    c.method.name = "mae"
    c.method.mask_ratio = 0.75
    c.method.norm_pix_loss = False  # 4x4 patches of thin strokes: per-patch norm amplifies noise
    c.method.decoder_width = 64
    c.method.decoder_depth = 2
    c.method.decoder_heads = 4
    c.method.online_probe = True

    # MAE uses crops (and flips) only; digits must not be mirrored.
    c.augment = augment_config("digits")
    c.augment.crop_scale = (0.6, 1.0)
    c.augment.jitter_prob = 0.0
    c.augment.blur_prob = 0.0

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.95
    c.optimizer.weight_decay = 0.05
    c.optimizer.warmup_steps = 50

    c.eval.probe_steps = 1000
    return c
