"""SimCLR on the 10k-image CIFAR-10 subset in ../shared/data (npz path), small CNN, CPU.

Evidence that pre-training learns beyond the easy digits (results in benchmarks/README.md):
  python benchmarks/make_cifar10_npz.py ../shared/data/cifar10 /tmp/cifar10_subset.npz
  python -m jaxssl.main --config configs/simclr_cifar10_subset.py --workdir runs/cifar_simclr
  python -m jaxssl.main --config configs/simclr_cifar10_subset.py --workdir runs/cifar_random \
      --config.total_steps=0
Augmentation is the SimCLR CIFAR recipe (appendix B.9: colour strength 0.5, no blur).
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 256
    c.total_steps = 600
    c.log_every = 50
    c.checkpoint_every = 200

    c.dataset.name = "npz:/tmp/cifar10_subset.npz"

    c.model.name = "cnn_small"
    c.model.widths = (32, 64, 128)

    c.method.name = "simclr"
    c.method.temperature = 0.2
    c.method.proj_hidden_dims = (256,)
    c.method.proj_dim = 64
    c.method.online_probe = True

    c.augment = augment_config("simclr_cifar")

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 100

    c.eval.batch_size = 512
    c.eval.probe_steps = 2000
    return c
