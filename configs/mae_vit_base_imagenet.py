"""MAE, ViT-B/16, ImageNet-1k, 800 epochs (He et al. 2022, "Masked Autoencoders Are Scalable
Vision Learners", Table 1(c)/(d) and appendix A.1: 68.0% linear probe; fine-tune 83.6%).

Needs imagenet2012 prepared for tfds and a TPU/GPU pod:
  python -m jaxssl.main --config configs/mae_vit_base_imagenet.py --workdir runs/mae_vitb \
      --config.dataset.data_dir=/path/to/tfds
Expected: linear_probe_top1 ~0.68 with the paper's linear protocol. Not run here.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 4096
    steps_per_epoch = 1_281_167 // c.batch_size
    c.total_steps = 800 * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 5000

    c.dataset.name = "imagenet2012"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256

    c.model.name = "vit_base"
    c.model.patch_size = 16
    c.model.pool = "cls"
    c.model.pos_embedding = "sincos"

    c.method.name = "mae"
    c.method.mask_ratio = 0.75
    c.method.norm_pix_loss = True
    c.method.decoder_width = 512
    c.method.decoder_depth = 8
    c.method.decoder_heads = 16
    c.method.online_probe = True

    # MAE: random resized crop (0.2, 1) and flip only.
    c.augment = augment_config("simclr")
    c.augment.crop_scale = (0.2, 1.0)
    c.augment.jitter_prob = 0.0
    c.augment.grayscale_prob = 0.0
    c.augment.blur_prob = 0.0

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1.5e-4  # base lr, scaled by batch / 256
    c.optimizer.lr_scaling = "linear"
    c.optimizer.b2 = 0.95
    c.optimizer.weight_decay = 0.05
    c.optimizer.warmup_steps = 40 * steps_per_epoch

    c.eval.batch_size = 1024
    c.eval.probe_steps = 10_000
    return c
