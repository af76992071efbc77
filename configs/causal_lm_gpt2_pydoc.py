"""configs/causal_lm_pydoc.py with GPT-2's architecture options, so the trained decoder
exports as a Hugging Face GPT-2 (export.formats=hf) that transformers loads with equal logits.

The differences from causal_lm_pydoc: no output bias (GPT-2's LM head is the tied embedding
alone) and LayerNorm eps 1e-5; pre-LN, tanh GELU and learned positions are jaxssl's defaults
and GPT-2's. Commands:
  python -m jaxssl.main --config configs/causal_lm_gpt2_pydoc.py --workdir runs/clm_gpt2
  python -m jaxssl.main --config configs/export_digits.py --workdir runs/export_clm \
      --config.init_from=runs/clm_gpt2 --config.dataset.name=pydoc \
      --config.dataset.test_split=validation --config.dataset.seq_len=64 \
      --config.export.formats=stablehlo,hf
The tokenizer is bytes (262 ids); runs/export_clm/hf holds config.json +
model.safetensors for GPT2LMHeadModel.from_pretrained. Same recipe and cost as
causal_lm_pydoc (about 5 minutes on a 2-core CPU for 2,000 steps).
"""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "causal_lm_pydoc", pathlib.Path(__file__).with_name("causal_lm_pydoc.py")
)
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config():
    c = _base.get_config()
    c.model.norm = "pre"
    c.model.activation = "gelu_tanh"
    c.model.ln_eps = 1e-5
    c.model.output_bias = False
    return c
