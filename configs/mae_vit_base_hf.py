"""Continue MAE pre-training (He et al. 2022) from facebook/vit-mae-base (Hugging Face).

Needs the folder (config.json + model.safetensors: `huggingface-cli download
facebook/vit-mae-base --local-dir DIR`) and the images prepared for tfds in ArrayRecord,
both on a machine with network; then, e.g. on a domain dataset of your own:
  python -m jaxssl.main --config configs/mae_vit_base_hf.py --workdir runs/mae_continue \
      --config.init_from=/path/to/vit-mae-base --config.dataset.name=imagenet2012
The encoder is read from the folder: its fixed sin-cos positions are MAE's own layout
(pos_embedding=sincos_mae), LayerNorm eps 1e-12; the decoder starts from random init (jaxssl
reads the encoder of ViTMAEForPreTraining folders). Otherwise the paper's recipe
(configs/mae_vit_base_imagenet.py), for 100 more epochs. Not run here (nothing can be
downloaded); the interop tests load tiny random ViT-MAEs with outputs equal to transformers'.
"""

from jaxssl.augment.views import default_config as augment_config
from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 4096
    steps_per_epoch = 1_281_167 // c.batch_size
    c.total_steps = 100 * steps_per_epoch  # continued: 100 epochs
    c.init_from = ""  # the facebook/vit-mae-base folder
    c.log_every = 100
    c.checkpoint_every = 5000

    c.dataset.name = "imagenet2012"
    c.dataset.test_split = "validation"
    c.dataset.image_size = 256

    c.model.name = "vit_base"
    c.model.patch_size = 16
    c.model.pool = "cls"
    c.model.pos_embedding = "sincos_mae"  # the checkpoint's fixed table
    c.model.ln_eps = 1e-12
    c.model.mlp_ratio = 4.0

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
    c.optimizer.warmup_steps = 5 * steps_per_epoch

    c.eval.batch_size = 1024
    c.eval.probe_steps = 10_000
    return c
