"""Public checkpoints in (Hugging Face BERT / GPT-2 / ViT / ViT-MAE folders, torchvision / timm
ResNet state dicts), the same formats out, and model functions exported to ONNX / StableHLO.

The checkpoint module (jaxssl/train/checkpoint.py) and the jobs call this package; it never
looks for files of its own beyond the path it is given.
"""

from jaxssl.interop.foreign import (
    HF,
    STATE_DICT,
    Foreign,
    check_options,
    detect,
    fit,
    load,
    place,
    preprocessing,
)

__all__ = [
    "check_options",
    "HF",
    "STATE_DICT",
    "Foreign",
    "detect",
    "fit",
    "load",
    "place",
    "preprocessing",
]
