"""DINO with on-device multi-crop on scikit-learn's bundled digits (1,437 train / 360 test).

Small CNN (global average pooling, so 16x16 global and 8x8 local crops both fit), 2 global
+ 4 local crops per example, DINO head 256-256 (with BN) -> 64 bottleneck -> 256 outputs.

Command (2-core CPU, a few minutes including evaluation):
  python -m jaxssl.main --config configs/dino_digits.py --workdir runs/dino_digits
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

    c.method.name = "dino"
    c.method.head_hidden_dims = (256, 256)  # 3-layer MLP as the paper's 2048-2048
    c.method.bottleneck_dim = 64  # paper: 256
    c.method.out_dim = 256  # paper: 65536
    c.method.norm_last_layer = True
    # BN in the head's hidden layers (the official use_bn_in_head): without it the small CNN's
    # pooled features, all positive after ReLU, reach the head nearly alike and the teacher
    # drifts to the uniform collapse (teacher_entropy -> log(out_dim)) on digits.
    c.method.head_bn = True
    c.method.momentum = 0.99  # paper 0.996 over 100+ epochs; short runs need faster teachers
    c.method.student_temp = 0.1
    # The official default 0.04 throughout: a warm-up to 0.07 drifted towards uniform here.
    c.method.warmup_teacher_temp = 0.04
    c.method.teacher_temp = 0.04
    c.method.teacher_temp_warmup_steps = 0
    c.method.center_momentum = 0.9
    c.method.clip_grad = 3.0  # per parameter tensor, as the official code
    c.method.freeze_last_layer_steps = 6  # about one epoch of 1,437 / 256, as the paper
    c.method.bn_per_view = False  # one batch-norm batch per crop size, as MultiCropWrapper
    c.method.local_crops = 4
    # Global view 2 and the local crops as the official recipe (blur 0.1 + solarize 0.2 on
    # view 2; locals: smaller, from a smaller part of the image, blur 0.5).
    c.method.view2 = dict(blur_prob=0.1, solarize_prob=0.2)
    c.method.local_view = dict(image_size=8, crop_scale=(0.25, 0.5), blur_prob=0.5)
    c.method.online_probe = True

    c.augment = augment_config("digits")  # global crops: 16x16 of scale 0.5-1

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 50

    c.eval.probe_steps = 1000
    return c
