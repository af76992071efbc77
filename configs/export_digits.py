"""Export a trained run as deployable files: serialized StableHLO, ONNX, Hugging Face / timm.

  python -m jaxssl.main --config configs/export_digits.py --workdir runs/export_ft \
      --config.init_from=runs/ft
      -> runs/export_ft/model.stablehlo + model.weights.safetensors, export.json
  add --config.export.formats=stablehlo,onnx -> also runs/export_ft/model.onnx
A fine-tuned run exports encoder + head (LoRA merged) returning logits; a pre-training run
(or a public checkpoint) its encoder returning export.feature. Inputs as the dataset gives
them: uint8 images [batch, 8, 8, 1] here, batch dynamic. The model comes from init_from; this
config gives the dataset (input shapes and the examples every artifact is verified on).
ONNX needs `pip install 'jaxssl[export]'` (jax2onnx, onnx, onnxruntime), so it is opt-in.
"""

import ml_collections

from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.job = "export"
    c.init_from = ""  # the workdir of the run to export
    c.dataset.name = "digits"
    # A text run: --config.dataset.name=pydoc --config.dataset.test_split=validation
    # --config.dataset.seq_len=64 (and --config.dataset.tokenizer=... if not bytes).
    c.dataset.seq_len = ml_collections.config_dict.placeholder(int)
    c.dataset.tokenizer = "byte"
    c.batch_size = 8  # unused by export; kept valid for the common checks
    c.export = ml_collections.ConfigDict()
    c.export.formats = "stablehlo"  # comma list of stablehlo, onnx (jaxssl[export]), hf
    c.export.feature = "pooled"  # encoder feature of a pre-training run (fine-tuned: logits)
    c.export.split = ""  # the real examples every artifact is checked on ("": test_split)
    c.export.verify_examples = 64
    c.export.tolerance = 1e-4  # max |difference| to the JAX model; larger is an error
    c.export.opset = 23
    return c
