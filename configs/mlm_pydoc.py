"""Byte-level BERT-style masked language model on CPython's bundled documentation.

Encoder: pre-LN Transformer, 4 layers, 4 heads, width 128, sequences of 128 bytes packed from
the documentation stream (documents separated by [EOS]). BERT masking: 15% of non-special
tokens per sequence, 80% [MASK] / 10% random / 10% unchanged (method.masking="span" or
"whole_word" for the variants). AdamW lr 1e-3, no dropout.

Command (2-core CPU; measured numbers are in benchmarks/README.md):
  python -m jaxssl.main --config configs/mlm_pydoc.py --workdir runs/mlm_pydoc
summary.json: eval_loss, perplexity (of masked tokens), masked_accuracy, next to
masked_accuracy_majority_baseline (always predicting the most frequent training byte).
"""

from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 32
    c.total_steps = 1500
    c.log_every = 100
    c.checkpoint_every = 500

    c.dataset.name = "pydoc"
    c.dataset.test_split = "validation"
    c.dataset.tokenizer = "byte"
    c.dataset.seq_len = 128
    c.dataset.train_stride = 16  # overlapping windows: more distinct training sequences
    c.dataset.eval_stride = 128

    c.model.name = "transformer_tiny"
    c.model.vocab_size = 262
    c.model.max_len = 128
    c.model.causal = False
    c.model.dropout = 0.0
    c.model.tie_embeddings = True
    c.model.pooling = "mean"

    c.method.name = "mlm"
    c.method.masking = "token"  # "token" (BERT) | "span" | "whole_word"
    c.method.mask_rate = 0.15
    c.method.mask_token_frac = 0.8
    c.method.random_token_frac = 0.1

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 100
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 128
    return c
