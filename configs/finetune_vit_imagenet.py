"""MAE end-to-end fine-tuning of ViT-B/16 on ImageNet-1k (He et al. 2022, Table 9 / A.3).

Paper recipe: 100 epochs, batch 1024, AdamW (0.9, 0.999), base lr 5e-4 scaled by B / 256
(so 2e-3), weight decay 0.05, layer-wise lr decay 0.65 (BEiT, Bao et al. 2022), 5 warmup
epochs then cosine, label smoothing 0.1, global-average-pooled features; the paper reports
83.6% top-1 from MAE pre-training. Not implemented here, so expect a gap: RandAugment(9, 0.5),
mixup 0.8 / cutmix 1.0, random erasing 0.25 and drop path 0.1.

Needs imagenet2012 prepared as ArrayRecord (see README) and an MAE ViT-B run with the same
model block; on a TPU v3-64 / 8xA100-class machine:
  python -m jaxssl.main --config configs/finetune_vit_imagenet.py --workdir runs/mae_ft \
      --config.init_from=runs/mae_vit_base --config.distributed.enabled=True
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config
from jaxssl.finetune.defaults import finetune_block


def get_config():
    c = base_config()
    c.job = "finetune"
    c.init_from = ""
    c.keep_checkpoints = 2
    c.batch_size = 1024
    steps_per_epoch = 1_281_167 // c.batch_size
    c.total_steps = 100 * steps_per_epoch
    c.log_every = 100
    c.checkpoint_every = 2000

    c.dataset.name = "imagenet2012"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256  # host: whole image, longer side 256; views crop 224 on device

    c.model.name = "vit_base"
    c.model.patch_size = 16
    c.model.pool = "mean"  # MAE fine-tunes on global-average-pooled tokens

    c.augment = augment_config("simclr")  # random-resized crop + flip; colour ops off below
    c.augment.image_size = 224
    c.augment.crop_scale = (0.08, 1.0)
    for key in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
        c.augment[key] = 0.0

    c.finetune = finetune_block()
    c.finetune.mode = "full"
    c.finetune.label_fraction = 1.0
    c.finetune.label_smoothing = 0.1
    c.finetune.layer_decay = 0.65
    c.finetune.update_batch_stats = True
    c.finetune.lora.target_patterns = (r"attn/(query|value)/kernel$",)  # for mode=lora
    c.finetune.adapter.target_patterns = (r"transformer/block\d+",)  # for mode=adapter

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 5e-4
    c.optimizer.lr_scaling = "linear"
    c.optimizer.b1, c.optimizer.b2 = 0.9, 0.999
    c.optimizer.weight_decay = 0.05
    c.optimizer.warmup_steps = 5 * steps_per_epoch
    c.eval.batch_size = 1024
    return c
