"""BYOL, ResNet-50, ImageNet-1k, 1000 epochs (Grill et al. 2020, "Bootstrap Your Own Latent",
Table 1: linear evaluation 74.3% top-1).

Needs imagenet2012 prepared for tfds and a TPU/GPU pod:
  python -m jaxssl.main --config configs/byol_resnet50_imagenet.py --workdir runs/byol_r50 \
      --config.dataset.data_dir=/path/to/tfds
Expected: linear_probe_top1 ~0.743 with the paper's linear protocol. Not run here.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 4096
    steps_per_epoch = 1_281_167 // c.batch_size
    c.total_steps = 1000 * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 5000

    c.dataset.name = "imagenet2012"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256

    c.model.name = "resnet50"

    c.method.name = "byol"
    c.method.momentum = 0.996  # cosine-increased to 1
    c.method.proj_hidden_dims = (4096,)
    c.method.pred_hidden_dims = (4096,)
    c.method.proj_dim = 256
    c.method.bn_per_view = True  # the official code forwards the two views one at a time
    c.method.view2 = dict(blur_prob=0.1, solarize_prob=0.2)  # Table 6, view 2
    c.method.online_probe = True

    c.augment = augment_config("byol")

    c.optimizer.name = "lars"
    c.optimizer.learning_rate = 0.2  # base lr, scaled by batch / 256
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1.5e-6
    c.optimizer.warmup_steps = 10 * steps_per_epoch

    c.eval.batch_size = 1024
    c.eval.probe_steps = 10_000
    return c
