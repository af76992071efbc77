"""SimCLR on scikit-learn's bundled handwritten digits (1,437 train / 360 test, 8x8 grey).

Command (2-core CPU, evaluation included, idle machine: about 46 s on a Zen 5, 82 s on a Zen 2):
  python -m jaxssl.main --config configs/simclr_digits.py --workdir runs/simclr_digits
Random-init baseline (same encoder, no pre-training):
  python -m jaxssl.main --config configs/simclr_digits.py --workdir runs/digits_random \
      --config.total_steps=0
Expected results are in README.md (knn_top1 / linear_probe_top1 in summary.json).
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 256
    c.total_steps = 600
    c.log_every = 25
    c.checkpoint_every = 200

    c.dataset.name = "digits"

    c.model.name = "cnn_small"
    c.model.widths = (32, 64, 128)

    c.method.name = "simclr"
    c.method.temperature = 0.2
    c.method.proj_hidden_dims = (256,)
    c.method.proj_dim = 64
    c.method.online_probe = True

    c.augment = augment_config("digits")

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 50

    c.eval.batch_size = 256
    c.eval.probe_steps = 1000
    return c
