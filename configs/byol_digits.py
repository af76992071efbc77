"""BYOL on scikit-learn's bundled handwritten digits (1,437 train / 360 test, 8x8 grey).

Command (2-core CPU, a few minutes including evaluation):
  python -m jaxssl.main --config configs/byol_digits.py --workdir runs/byol_digits
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

    c.model.name = "cnn_small"
    c.model.widths = (32, 64, 128)

    c.method.name = "byol"
    c.method.momentum = 0.99  # BYOL uses 0.996 for 1000 epochs; short runs need faster targets
    c.method.proj_hidden_dims = (256,)
    c.method.pred_hidden_dims = (256,)
    c.method.proj_dim = 64
    # View 2's differences from view 1 (the BYOL recipe's asymmetric blur and solarize).
    c.method.bn_per_view = False  # True: each view its own batch-norm batch (official code)
    c.method.view2 = dict(blur_prob=0.1, solarize_prob=0.2)
    c.method.online_probe = True

    c.augment = augment_config("digits")

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 50

    c.eval.probe_steps = 1000
    return c
