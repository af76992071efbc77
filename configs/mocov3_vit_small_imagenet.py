"""MoCo v3, ViT-S/16, ImageNet-1k, 300 epochs (Chen, Xie & He 2021, "An Empirical Study of
Training Self-Supervised Vision Transformers", Table 2 / appendix: linear probe 73.2% top-1).

Needs imagenet2012 prepared for tfds (ArrayRecord) and a TPU/GPU pod:
  python -m jaxssl.main --config configs/mocov3_vit_small_imagenet.py --workdir runs/mocov3_vits \
      --config.dataset.data_dir=/path/to/tfds
Expected: linear_probe_top1 ~0.732 with the paper's 90-epoch SGD linear probe (the built-in
offline probe is a shorter AdamW probe on frozen features; numbers are not directly comparable).
Not run here: no ImageNet and no accelerator on the development machine.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 4096
    steps_per_epoch = 1_281_167 // c.batch_size
    c.total_steps = 300 * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 5000

    c.dataset.name = "imagenet2012"
    c.dataset.train_split = "train"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256

    c.model.name = "vit_small"
    c.model.patch_size = 16
    c.model.pos_embedding = "sincos"
    c.model.pool = "cls"

    c.method.name = "moco"
    c.method.temperature = 0.2
    c.method.momentum = 0.99
    c.method.proj_hidden_dims = (4096, 4096)  # 3-layer projector, last BN
    c.method.pred_hidden_dims = (4096,)  # 2-layer predictor
    c.method.proj_dim = 256
    c.method.bn_per_view = True  # the official code forwards the two views one at a time
    c.method.queue_size = 0
    c.method.online_probe = True

    c.augment = augment_config("byol")  # MoCo v3 uses BYOL's asymmetric recipe
    c.augment.crop_scale = (0.08, 1.0)

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1.5e-4  # base lr, scaled by batch / 256
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 0.1
    c.optimizer.warmup_steps = 40 * steps_per_epoch

    c.eval.batch_size = 1024
    c.eval.probe_steps = 10_000
    return c
