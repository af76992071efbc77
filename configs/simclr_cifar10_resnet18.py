"""SimCLR, CIFAR-10, ResNet-18 with the CIFAR stem: the official SimCLR repository's CIFAR command.

Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
appendix B.9 settings: colour strength 0.5, no blur, temperature 0.5, LARS with linearly
scaled learning rate 1.0 x B/256, weight decay 1e-4 (repo command), batch 512, 1000 epochs.
The authors' repository reports about 92% linear-evaluation top-1 for this command.

Needs cifar10 prepared as ArrayRecord (`tfds build cifar10 --file_format=array_record`).
  python -m jaxssl.main --config configs/simclr_cifar10_resnet18.py --workdir runs/c10_r18 \
      --config.dataset.data_dir=$TFDS_DATA_DIR
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config

EPOCHS = 1000
TRAIN_EXAMPLES = 50_000


def get_config():
    c = base_config()
    c.batch_size = 512
    steps_per_epoch = TRAIN_EXAMPLES // c.batch_size
    c.total_steps = EPOCHS * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 10 * steps_per_epoch

    c.dataset.name = "cifar10"

    c.model.name = "resnet18"
    c.model.stem = "cifar"

    c.method.name = "simclr"
    c.method.temperature = 0.5
    c.method.proj_hidden_dims = (512,)
    c.method.proj_dim = 128
    c.method.online_probe = True

    c.augment = augment_config("simclr_cifar")

    c.optimizer.name = "lars"
    c.optimizer.learning_rate = 1.0
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 10 * steps_per_epoch

    c.eval.batch_size = 1024
    c.eval.probe_steps = 5000
    return c
