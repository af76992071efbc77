"""The `train_tokenizer` job: a byte-level BPE trained on the train split, saved in the workdir.

  python -m jaxssl.main --config configs/mlm_pydoc.py --workdir W \
      --config.job=train_tokenizer --config.model.vocab_size=4096
writes W/tokenizer.json (vocab_size = model.vocab_size); pre-train in the same workdir with
  --config.dataset.tokenizer=W/tokenizer.json --config.model.vocab_size=4096
so the tokenizer lives next to the checkpoints it was trained for.
"""

from typing import Any

import jax
import ml_collections
from etils import epath

from jaxssl.data import text as text_data
from jaxssl.data import tokenizers


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains and saves the tokenizer; returns its size and compression on both splits."""
    workdir = epath.Path(workdir)
    path = workdir / tokenizers.TOKENIZER_FILE
    if path.exists():
        raise FileExistsError(
            f"{path} exists and checkpoints may depend on it: use a new --workdir or delete it"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    ds = config.dataset
    train = text_data.split_texts(ds, ds.train_split)
    vocab = int(config.model.vocab_size)
    if jax.process_index() == 0:
        tokenizers.train_bpe(train, vocab, str(path))
    if jax.process_count() > 1:  # one writer; the others read it from the shared workdir
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jaxssl_tokenizer_written")
    tok = tokenizers.BPETokenizer(str(path))
    summary: dict[str, Any] = {"tokenizer": str(path), "vocab_size": tok.vocab_size}
    for split in (ds.train_split, ds.test_split):
        docs = train if split == ds.train_split else text_data.split_texts(ds, split)
        n_bytes = sum(len(d.encode("utf-8")) for d in docs)
        n_tokens = sum(len(tok.encode(d)) for d in docs)
        summary[f"{split}_bytes_per_token"] = float(n_bytes / max(n_tokens, 1))
    summary["round_trip_ok"] = bool(tok.decode(tok.encode(train[0][:2000])) == train[0][:2000])
    if jax.process_index() == 0:
        print(f"jaxssl: wrote {path}: {summary}")
    return summary
