"""SimCLR, ImageNet, ResNet-50 (1x): Chen et al. 2020 main setting.

Batch 4096, LARS, learning rate 0.3 x B/256 = 4.8, weight decay 1e-6, temperature 0.1,
10 warmup epochs then cosine decay, 2-layer projection head (2048 -> 128), full SimCLR
augmentation (crop, flip, colour jitter strength 1.0, grayscale, blur). The paper reports
69.3% linear-evaluation top-1 after 1000 epochs (Table 6) and about 64-65% after 100
(Figure 9); set EPOCHS accordingly. Sized for a v4-32 / v5e-16 pod slice; needs
imagenet2012 prepared as ArrayRecord in dataset.data_dir (variable-size JPEGs are resized
whole, longer side to dataset.image_size, on the host: the on-device random crop samples
from the whole image, as the paper's; dataset.resize="whole", the default).
  python -m jaxssl.main --config configs/simclr_imagenet_resnet50.py --workdir gs://BUCKET/simclr \
      --config.dataset.data_dir=gs://BUCKET/tfds
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config

EPOCHS = 100
TRAIN_EXAMPLES = 1_281_167


def get_config():
    c = base_config()
    c.batch_size = 4096
    steps_per_epoch = TRAIN_EXAMPLES // c.batch_size
    c.total_steps = EPOCHS * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 2000

    c.dataset.name = "imagenet2012"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256

    c.model.name = "resnet50"
    c.model.stem = "imagenet"

    c.method.name = "simclr"
    c.method.temperature = 0.1
    c.method.proj_hidden_dims = (2048,)
    c.method.proj_dim = 128
    c.method.online_probe = True

    c.augment = augment_config("simclr")

    c.optimizer.name = "lars"
    c.optimizer.learning_rate = 0.3
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-6
    c.optimizer.warmup_steps = 10 * steps_per_epoch

    c.eval.batch_size = 1024
    c.eval.probe_steps = 20000
    c.eval.probe_batch_size = 4096
    return c
