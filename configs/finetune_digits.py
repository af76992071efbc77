"""Fine-tuning a pre-trained encoder on digits with 10% of the training labels (144 images).

Pre-train first (about 3 minutes on a 2-core CPU):
  python -m jaxssl.main --config configs/simclr_digits.py --workdir runs/simclr_digits
Then (about 1 minute each):
  python -m jaxssl.main --config configs/finetune_digits.py --workdir runs/ft \
      --config.init_from=runs/simclr_digits
Modes: --config.finetune.mode=linear|partial|full|lora|adapter; from scratch: leave
init_from empty. Test metrics (top1, top5, precision/recall/f1_macro) land in summary.json,
the confusion matrix in plots/confusion_matrix.png; expected numbers are in README.md.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config
from jaxssl.finetune.defaults import finetune_block


def get_config():
    c = base_config()
    c.job = "finetune"
    c.init_from = ""  # a pre-training workdir; empty: the same encoder from random init
    c.batch_size = 64
    c.total_steps = 500
    c.log_every = 25
    c.checkpoint_every = 500

    c.dataset.name = "digits"
    # Must match the pre-training run's model block (checked before anything compiles).
    c.model.name = "cnn_small"
    c.model.widths = (32, 64, 128)

    # Same input size and normalisation as pre-training; milder crops, no blur.
    c.augment = augment_config("digits")
    c.augment.crop_scale = (0.7, 1.0)
    c.augment.jitter_prob = 0.5
    c.augment.blur_prob = 0.0

    c.finetune = finetune_block()
    c.finetune.mode = "full"
    c.finetune.label_fraction = 0.1
    c.finetune.label_smoothing = 0.1
    c.finetune.lora.target_patterns = (r"conv\d+/kernel$",)
    c.finetune.adapter.target_patterns = (r"bn\d+",)  # cnn_small: after each stage's BN

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 25

    c.eval.batch_size = 256
    return c
