"""VICReg, ResNet-50, ImageNet-1k, 1000 epochs (Bardes, Ponce & LeCun 2022, "VICReg:
Variance-Invariance-Covariance Regularization for Self-Supervised Learning", Table 1: linear
evaluation 73.2% top-1).

Paper setting: batch 2048, LARS (base learning rate 0.2 x B/256, weight decay 1e-6), 10
warm-up epochs then cosine decay to 0.001 x the peak, expander 8192-8192-8192, coefficients
25 (invariance) / 25 (variance) / 1 (covariance), BYOL's augmentation.

Not run here: needs ImageNet prepared in ArrayRecord and an accelerator (a v4-32 / 8xA100
class slice):
  python -m jaxssl.main --config configs/vicreg_resnet50_imagenet.py \
      --workdir gs://BUCKET/vicreg_r50 --config.dataset.data_dir=gs://BUCKET/tfds
Expected: linear_probe_top1 ~0.732 with the paper's 100-epoch linear protocol (the built-in
offline probe is a shorter AdamW probe on frozen features: not directly comparable).
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config

EPOCHS = 1000
TRAIN_EXAMPLES = 1_281_167


def get_config():
    c = base_config()
    c.batch_size = 2048
    steps_per_epoch = TRAIN_EXAMPLES // c.batch_size
    c.total_steps = EPOCHS * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 5000

    c.dataset.name = "imagenet2012"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256

    c.model.name = "resnet50"
    c.model.stem = "imagenet"

    c.method.name = "vicreg"
    c.method.proj_hidden_dims = (8192, 8192)
    c.method.proj_dim = 8192
    c.method.sim_weight = 25.0
    c.method.var_weight = 25.0
    c.method.cov_weight = 1.0
    c.method.gamma = 1.0
    c.method.bn_per_view = True  # the official code forwards the two views one at a time
    c.method.view2 = dict(blur_prob=0.1, solarize_prob=0.2)  # BYOL's view 2
    c.method.online_probe = True

    c.augment = augment_config("byol")

    c.optimizer.name = "lars"
    c.optimizer.learning_rate = 0.2  # x batch / 256
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-6
    c.optimizer.warmup_steps = 10 * steps_per_epoch
    c.optimizer.end_lr_fraction = 0.001

    c.eval.batch_size = 1024
    c.eval.probe_steps = 10_000
    return c
