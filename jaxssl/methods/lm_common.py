"""Shared by the language-model methods: token tables, the held-out evaluation pass."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxssl.data import pipeline, sources
from jaxssl.data import text as text_data
from jaxssl.train import mesh as mesh_lib

SumFn = Callable[[Any, Any, dict[str, jax.Array], jax.Array], dict[str, jax.Array]]


def check_vocab(config: ml_collections.ConfigDict) -> text_data.tokenizers.Tokenizer:
    """The configured tokenizer, after checking the model's vocabulary can hold it."""
    tok = text_data.tokenizer_of(config.dataset)
    vocab = config.model.get("vocab_size")
    if vocab is None or vocab < tok.vocab_size:
        raise ValueError(
            f"model.vocab_size={vocab} cannot hold the {tok.vocab_size} ids of {tok!r}: set"
            f" --config.model.vocab_size={tok.vocab_size}"
        )
    return tok


def encode_tokens(encoder: Any, params: Any, batch: dict[str, jax.Array]) -> dict:
    """Eval-mode Transformer features of a token batch (padding masked out)."""
    _, features = encoder.apply(
        {"params": params["encoder"]},
        batch["tokens"],
        train=False,
        attention_mask=batch["attention_mask"] > 0,
    )
    return features


def padded_table(table: np.ndarray, size: int, fill: Any = 0) -> jax.Array:
    """A per-token table padded to the model's vocabulary size (ids past the tokenizer's)."""
    out = np.full(size, fill, table.dtype)
    out[: len(table)] = table
    return jnp.asarray(out)


def eval_sums(
    sum_fn: SumFn,
    params: Any,
    model_state: Any,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
) -> dict[str, float]:
    """Sums of sum_fn's outputs over one pass of the held-out split (dataset.test_split)."""
    source = sources.get_source(config.dataset, config.dataset.test_split)
    fn = jax.jit(sum_fn, out_shardings=mesh_lib.replicated(mesh))
    max_batches = config.eval.get("max_batches") or None
    totals: dict[str, float] = {}
    batches = pipeline.eval_batches(
        source,
        batch_size=config.eval.batch_size,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
    for i, local in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        out = jax.device_get(
            fn(params, model_state, mesh_lib.to_global_batch(local, mesh), jnp.int32(i))
        )
        for k, v in out.items():
            totals[k] = totals.get(k, 0.0) + float(v)
    return totals


def most_frequent_token(source: Any, special: np.ndarray, max_records: int = 4096) -> int:
    """The commonest non-special token of a text source (its stream, or its first records)."""
    if hasattr(source, "tokens"):
        ids = np.asarray(source.tokens)
    else:
        n = min(len(source), max_records)
        ids = np.concatenate(
            [source[i]["tokens"][source[i]["attention_mask"] > 0] for i in range(n)]
        )
    counts = np.bincount(ids, minlength=len(special))[: len(special)]
    counts[special] = 0
    return int(np.argmax(counts))
