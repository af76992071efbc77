"""Tiny text configs for the text tests: real pydoc text, models that compile in seconds."""

import pydoc_data.topics

from .helpers import load_config


def corpus_file(tmp_path) -> str:
    """A text file with a slice of the real pydoc documentation (no tfds preparation)."""
    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[k] for k in sorted(topics)[:6])
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def tiny_text_config(method: str, dataset_name: str, seq_len: int = 17):
    """configs/<method>_pydoc shrunk: width 32, 1 layer, batch 16, 4 steps."""
    c = load_config(f"{method}_pydoc")
    c.dataset.name = dataset_name
    c.dataset.seq_len = seq_len
    c.dataset.train_stride = seq_len
    c.dataset.eval_stride = seq_len - 1 if method == "causal_lm" else seq_len
    c.batch_size = 16
    c.total_steps = 4
    c.log_every = 2
    c.checkpoint_every = 2
    c.model.width = 32
    c.model.depth = 1  # CPU compile time; causal/padding masks are tested on 2 layers
    c.model.num_heads = 2
    c.model.mlp_dim = 64
    c.model.max_len = seq_len
    c.optimizer.warmup_steps = 1
    c.eval.batch_size = 64
    c.eval.max_batches = 2
    return c
