"""Byte-level GPT-style causal LM on CPython's bundled documentation (pydoc_data.topics).

The shape of a well-known small CPU reference (nanoGPT's tiny-shakespeare character model):
4 layers, 4 heads, width 128, context 64, batch 12, 2,000 steps, AdamW lr 1e-3 (beta2 0.99,
100 warmup steps, cosine to 1e-4, weight decay 0.1, clip 1.0), no dropout, tied embeddings.
A record is 65 tokens = 64 inputs + 64 shifted targets; training windows start at every byte
offset (train_stride 1, like random batches), held-out windows every 64 bytes.

Command (2-core CPU; measured numbers are in benchmarks/README.md):
  python -m jaxssl.main --config configs/causal_lm_pydoc.py --workdir runs/causal_lm_pydoc
Any UTF-8 text file trains the same way (first 90% train, last 10% validation):
  python -m jaxssl.main --config configs/causal_lm_pydoc.py --workdir runs/shakespeare \
      --config.dataset.name=text:/path/to/input.txt
Sample from the checkpoint afterwards:
  python -m jaxssl.main --config configs/causal_lm_pydoc.py --workdir runs/causal_lm_pydoc \
      --config.job=generate --config.generate.prompt="The with statement"
summary.json: eval_loss (nats/token), perplexity, bits_per_byte, next_token_accuracy.
"""

import ml_collections

from jaxssl.config import base_config


def get_config():
    c = base_config()
    c.batch_size = 12
    c.total_steps = 2000
    c.log_every = 100
    c.checkpoint_every = 1000

    c.dataset.name = "pydoc"
    c.dataset.test_split = "validation"
    c.dataset.tokenizer = "byte"  # or the path of a tokenizer.json from job=train_tokenizer
    c.dataset.seq_len = 65
    c.dataset.train_stride = 1
    c.dataset.eval_stride = 64

    c.model.name = "transformer_tiny"  # width 128, 4 layers, 4 heads, MLP 512
    c.model.vocab_size = 262  # byte tokenizer: 256 bytes + 6 special tokens
    c.model.max_len = 64
    c.model.causal = True
    c.model.dropout = 0.0
    c.model.tie_embeddings = True

    c.method.name = "causal_lm"

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.99
    c.optimizer.weight_decay = 0.1
    c.optimizer.warmup_steps = 100
    c.optimizer.end_lr_fraction = 0.1
    c.optimizer.grad_clip_norm = 1.0

    # Held-out windows per evaluation step: on the 2-core CPU a pass over tiny-shakespeare's
    # held-out split takes 1.5 s at 32 and 2.7 s at 256 (benchmarks/README.md); same sums.
    c.eval.batch_size = 32

    c.generate = ml_collections.ConfigDict()  # job=generate: sampling settings
    c.generate.prompt = "The "
    c.generate.num_tokens = 200
    c.generate.num_samples = 2
    c.generate.temperature = 0.8  # 0 = greedy
    c.generate.top_k = 40  # 0 = the full vocabulary
    c.generate.seed = 0
    return c
