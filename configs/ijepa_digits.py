"""I-JEPA with a small ViT on scikit-learn's bundled digits (1,437 train / 360 test, 8x8 grey).

16x16 upsampled crops, patch 2: an 8x8 grid of 64 patches; 4 target blocks of 3x3 patches,
a context block of the whole grid minus the targets, 26 context patches kept.

Command (2-core CPU, a few minutes including evaluation):
  python -m jaxssl.main --config configs/ijepa_digits.py --workdir runs/ijepa_digits
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
    c.model.patch_size = 2
    c.model.width = 96
    c.model.depth = 4
    c.model.num_heads = 4
    c.model.pool = "mean"  # I-JEPA has no cls token: evaluation averages the patch tokens
    c.model.pos_embedding = "sincos"

    c.method.name = "ijepa"
    c.method.num_targets = 4
    c.method.target_scale = 0.15  # of the patch grid's area (paper: 0.15-0.2)
    c.method.target_aspect = 1.0  # height / width (paper: 0.75-1.5); transposed at random
    c.method.context_scale = 1.0  # paper: 0.85-1.0
    c.method.context_keep = 0.4  # context patches kept, as a fraction of the grid
    c.method.pred_width = 64
    c.method.pred_depth = 2
    c.method.pred_heads = 4
    c.method.momentum = 0.99  # paper 0.996 over 300 epochs; rises linearly to 1
    c.method.loss = "smooth_l1"
    c.method.online_probe = True

    # I-JEPA uses random resized crops only (no flip, colour or blur).
    c.augment = augment_config("digits")
    c.augment.crop_scale = (0.6, 1.0)
    c.augment.jitter_prob = 0.0
    c.augment.blur_prob = 0.0

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.04
    c.optimizer.warmup_steps = 50

    c.eval.probe_steps = 1000
    return c
