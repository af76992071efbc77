"""Predictions or embeddings of a trained run for one split of digits, written as .npz.

  python -m jaxssl.main --config configs/predict_digits.py --workdir runs/ft_predict \
      --config.init_from=runs/ft
      -> runs/ft_predict/predictions_test.npz (predictions, logits, labels)
  python -m jaxssl.main --config configs/predict_digits.py --workdir runs/simclr_embed \
      --config.init_from=runs/simclr_digits --config.job=embed
      -> runs/simclr_embed/embeddings_test.npz (embeddings, labels)
The model comes from the run's config.json; dataset and split from here.
"""

import ml_collections

from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.job = "predict"  # or "embed"
    c.init_from = ""  # the workdir of a finetune run (predict) or any run (embed)
    c.dataset.name = "digits"
    c.batch_size = 8  # unused by inference; kept valid for the common checks
    c.predict = ml_collections.ConfigDict()
    c.predict.split = "test"
    c.predict.batch_size = 256
    c.predict.feature = "pooled"  # embed: which encoder feature
    return c
