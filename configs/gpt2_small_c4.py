"""GPT-2 small causal LM (Radford et al. 2019, Table 2 smallest model) on C4 English.

Shapes from the paper: 12 layers, width 768, 12 heads, MLP 3072 (124M params), context 1024,
byte-level BPE of 50,257 tokens, tied input/output embeddings, pre-LayerNorm with a final
LayerNorm, batch 512. WebText is not public and OpenWebText is not in tfds, so this uses tfds
`c4/en` (prepared in ArrayRecord format under dataset.data_dir); the optimizer follows common
GPT-2 reproductions (AdamW lr 6e-4, beta2 0.95, weight decay 0.1, 2k warmup, cosine to 10%).
Records are one [CLS] document [SEP] each, truncated to 1025 tokens (no cross-document packing
for tfds datasets here).

  python -m jaxssl.main --config configs/gpt2_small_c4.py --workdir W --config.job=train_tokenizer
  python -m jaxssl.main --config configs/gpt2_small_c4.py --workdir W \
      --config.dataset.tokenizer=W/tokenizer.json
Not run here (needs accelerators and the dataset).
"""

import ml_collections

from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 512
    c.total_steps = 600_000
    c.log_every = 100
    c.checkpoint_every = 5_000

    c.dataset.name = "c4/en"
    c.dataset.test_split = "validation"
    c.dataset.text_key = "text"
    c.dataset.tokenizer = "byte"  # replace with W/tokenizer.json after job=train_tokenizer
    c.dataset.seq_len = 1025  # 1024 inputs + 1024 shifted targets

    c.model.name = "transformer_base"
    c.model.vocab_size = 50_257
    c.model.max_len = 1024
    c.model.causal = True
    c.model.dropout = 0.0
    c.model.tie_embeddings = True
    c.model.dtype = "bfloat16"
    c.model.remat = True

    c.method.name = "causal_lm"

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 6e-4
    c.optimizer.b2 = 0.95
    c.optimizer.weight_decay = 0.1
    c.optimizer.warmup_steps = 2_000
    c.optimizer.end_lr_fraction = 0.1
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 64
    c.eval.max_batches = 100
    c.generate = ml_collections.ConfigDict()  # job=generate: sampling settings
    c.generate.prompt = "The "
    c.generate.num_tokens = 200
    c.generate.num_samples = 2
    c.generate.temperature = 0.8  # 0 = greedy
    c.generate.top_k = 40  # 0 = the full vocabulary
    c.generate.seed = 0
    return c
