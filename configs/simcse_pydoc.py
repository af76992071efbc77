"""Unsupervised SimCSE (Gao et al. 2021) on CPython's bundled documentation, byte tokens.

Encoder: the transformer_tiny of configs/mlm_pydoc.py (4 layers, width 128, mean pooling,
128-byte windows) with dropout 0.1: each window goes through it twice, the two dropout masks
are the two views (method.corruption adds text noise to each view; off here). SimCSE's MLP
pooler in training only; InfoNCE over the global batch with temperature 0.05.
pydoc has no labels, so summary.json holds the method's own held-out evaluation:
eval_contrastive_loss and eval_contrastive_top1 (picking a window's second view among the
eval.batch_size second views of its batch; chance 1/128). For kNN / linear-probe numbers
pre-train on a labelled corpus: configs/simcse_corpus_id.py.

Command (2-core CPU):
  python -m jaxssl.main --config configs/simcse_pydoc.py --workdir runs/simcse_pydoc
"""

from jaxssl.config import base_config
from jaxssl.methods.lm_common import corruption_block


def get_config():
    c = base_config()
    c.batch_size = 64
    c.total_steps = 300
    c.log_every = 25
    c.checkpoint_every = 300

    c.dataset.name = "pydoc"
    c.dataset.test_split = "validation"
    c.dataset.tokenizer = "byte"
    c.dataset.seq_len = 128
    c.dataset.train_stride = 64
    c.dataset.eval_stride = 128

    c.model.name = "transformer_tiny"
    c.model.vocab_size = 262
    c.model.max_len = 128
    c.model.causal = False
    c.model.dropout = 0.1  # the views: two dropout masks per window (SimCSE)
    c.model.tie_embeddings = True
    c.model.pooling = "mean"

    c.method.name = "simcse"
    c.method.temperature = 0.05
    c.method.mlp_pooler = True  # Dense + tanh over the pooled output, training only
    c.method.corruption = corruption_block()  # per-view text noise; all off = dropout only

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 30
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 128
    return c
