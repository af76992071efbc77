"""SimCSE pre-training on the corpus-identification texts, then the frozen-encoder protocol.

The unlabelled training windows of configs/finetune_corpus_id.py (CPython docs,
tiny-shakespeare, WikiText-2; 9,834 train / 1,092 test windows of 128 bytes) pre-train the
transformer_tiny encoder of configs/simcse_pydoc.py with unsupervised SimCSE (dropout views,
InfoNCE over the global batch, temperature 0.05); labels are used only afterwards, by the
standard evaluation: weighted cosine kNN and an offline linear probe on the frozen mean-pooled
features (summary.json: knn_top1, linear_probe_top1, linear_probe_f1_macro; chance 0.333).
Needs ../shared/data (run from the repo root).

Commands (2-core CPU). SimCSE with dropout views, and with span deletion + permutation added
to each view (the better one: kNN 0.922 vs 0.842); the random-init encoder (0 steps: only the
evaluation runs); MLM of the same budget (steps, batch, model, data) and its frozen evaluation:
  python -m jaxssl.main --config configs/simcse_corpus_id.py --workdir runs/simcse_corpus
  python -m jaxssl.main --config configs/simcse_corpus_id.py --workdir runs/simcse_noise \
      --config.method.corruption.deletion=0.1 --config.method.corruption.permute=span
  python -m jaxssl.main --config configs/simcse_corpus_id.py --workdir runs/probe_random \
      --config.total_steps=0
  python -m jaxssl.main --config configs/simcse_corpus_id.py --workdir runs/mlm_corpus \
      --config.method.name=mlm
  python -m jaxssl.main --config configs/simcse_corpus_id.py --workdir runs/probe_mlm \
      --config.total_steps=0 --config.init_from=runs/mlm_corpus
Measured numbers: README.md, "Text: masked and causal language modelling".
"""

from ml_collections.config_dict import placeholder

from jaxssl.config import base_config
from jaxssl.methods.lm_common import corruption_block

DATA = "../shared/data"
CORPORA = (
    ("pydoc", "pydoc"),
    ("shakespeare", f"{DATA}/tinyshakespeare/input.txt"),
    ("wikitext", f"{DATA}/wikitext2/wiki.valid.raw"),
)


def get_config():
    c = base_config()
    c.init_from = ""  # another pre-training run's encoder (with total_steps=0: evaluate it)
    c.batch_size = 64
    c.total_steps = 300  # about 2 epochs of the 9,834 training windows
    c.log_every = 25
    c.checkpoint_every = 300

    c.dataset.name = "corpora:" + ",".join(f"{n}={p}" for n, p in CORPORA)
    c.dataset.tokenizer = "byte"
    c.dataset.seq_len = 128
    c.dataset.max_windows_per_class = placeholder(int)
    c.dataset.test_fraction = 0.1

    # The model block of configs/mlm_pydoc.py (so finetune_corpus_id can reuse the encoder),
    # with SimCSE's dropout 0.1.
    c.model.name = "transformer_tiny"
    c.model.vocab_size = 262
    c.model.max_len = 128
    c.model.causal = False
    c.model.dropout = 0.1
    c.model.tie_embeddings = True
    c.model.pooling = "mean"

    c.method.name = "simcse"
    c.method.temperature = 0.05
    c.method.mlp_pooler = True
    c.method.corruption = corruption_block()
    c.method.online_probe = False  # the offline kNN + linear probe are the protocol

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.98
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 30
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 128
    return c
