"""Which corpus does a 128-byte passage come from: Python docs, Shakespeare or Wikipedia?

A real 3-class text task for the sequence-classification fine-tune path: the MLM-pretrained
byte Transformer (configs/mlm_pydoc.py) reads non-overlapping 128-byte windows of CPython's
embedded documentation, tiny-shakespeare and WikiText-2 (validation split), mean-pools them and
a linear head predicts the corpus. Every corpus keeps as many windows as the smallest one
(pydoc: 3,642), spread over the whole text; each corpus's last 10% are the test split, so
test passages never overlap training text (9,834 train / 1,092 test windows, balanced).

Needs ../shared/data (relative to the repo root; run from there): the config loads without
it and validation names the missing file. Any other texts: --config.dataset.name=
'corpora:NAME=PATH,NAME=PATH,...' (PATH a UTF-8 file or `pydoc`).

Commands (2-core CPU; pre-training about 5 minutes, each fine-tune 1 to 3 minutes):
  python -m jaxssl.main --config configs/mlm_pydoc.py --workdir runs/mlm_pydoc \
      --config.total_steps=600
  python -m jaxssl.main --config configs/finetune_corpus_id.py --workdir runs/corpus_linear \
      --config.init_from=runs/mlm_pydoc --config.finetune.mode=linear
  python -m jaxssl.main --config configs/finetune_corpus_id.py --workdir runs/corpus_full \
      --config.init_from=runs/mlm_pydoc
  python -m jaxssl.main --config configs/finetune_corpus_id.py --workdir runs/corpus_scratch
summary.json: top1, f1_macro, ... on the 1,092 test windows (chance 0.333). Measured (2-core
CPU, 300 steps): linear 0.728 top1 (0.783 with --config.optimizer.learning_rate=3e-3),
full 0.980, full from scratch 0.991; f1_macro within 0.001 of top1 (balanced classes).
"""

from ml_collections.config_dict import placeholder

from jaxssl.config import base_config
from jaxssl.finetune.defaults import finetune_block

DATA = "../shared/data"
CORPORA = (
    ("pydoc", "pydoc"),
    ("shakespeare", f"{DATA}/tinyshakespeare/input.txt"),
    ("wikitext", f"{DATA}/wikitext2/wiki.valid.raw"),
)


def get_config():
    c = base_config()
    c.job = "finetune"
    c.init_from = ""  # an MLM pre-training workdir; empty: the same encoder from random init
    c.batch_size = 64
    c.total_steps = 300  # about 2 epochs of the 9,834 training windows
    c.log_every = 25
    c.checkpoint_every = 300

    c.dataset.name = "corpora:" + ",".join(f"{n}={p}" for n, p in CORPORA)
    c.dataset.tokenizer = "byte"
    c.dataset.seq_len = 128
    c.dataset.max_windows_per_class = placeholder(int)  # None: the smallest corpus's window count
    c.dataset.test_fraction = 0.1

    # Must match configs/mlm_pydoc.py's model block (checked before anything compiles).
    c.model.name = "transformer_tiny"
    c.model.vocab_size = 262
    c.model.max_len = 128
    c.model.causal = False
    c.model.dropout = 0.0
    c.model.tie_embeddings = True
    c.model.pooling = "mean"

    c.finetune = finetune_block()
    c.finetune.mode = "full"
    c.finetune.label_fraction = 1.0
    c.finetune.label_smoothing = 0.1
    c.finetune.lora.target_patterns = (r"qkv/kernel$",)

    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 3e-4
    c.optimizer.weight_decay = 0.01
    c.optimizer.warmup_steps = 25
    c.optimizer.grad_clip_norm = 1.0

    c.eval.batch_size = 128
    return c
