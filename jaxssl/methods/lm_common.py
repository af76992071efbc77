"""Shared by the language-model methods: token tables, the held-out evaluation pass."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxssl import sharding as mesh_lib
from jaxssl.data import pipeline, sources
from jaxssl.data import text as text_data

SumFn = Callable[[Any, Any, dict[str, jax.Array], jax.Array], dict[str, jax.Array]]


def check_config(config: ml_collections.ConfigDict, causal: bool) -> text_data.tokenizers.Tokenizer:
    """The configured tokenizer, after checking the Transformer can serve this LM method.

    Raises ValueError (a config error) naming the key and the fix: a model that is not a
    Transformer, a vocabulary smaller than the tokenizer's, too few positions, the wrong
    attention direction, or heads that do not divide the width.
    """
    name, model = config.method.name, config.model
    if not str(model.get("name", "")).startswith("transformer"):
        raise ValueError(
            f"method {name!r} needs a Transformer: set --config.model.name=transformer_tiny "
            "(or _small / _base)"
        )
    tok = text_data.tokenizer_of(config.dataset)
    vocab = model.get("vocab_size")
    if vocab is None or vocab < tok.vocab_size:
        raise ValueError(
            f"model.vocab_size={vocab} cannot hold the {tok.vocab_size} ids of {tok!r}: set"
            f" --config.model.vocab_size={tok.vocab_size}"
        )
    seq_len = int(config.dataset.get("seq_len") or 128)
    need = seq_len - 1 if causal else seq_len
    if model.get("max_len", 128) < need:
        raise ValueError(
            f"model.max_len={model.get('max_len', 128)} < {need} positions the {name} step feeds"
            f" (dataset.seq_len={seq_len}): set --config.model.max_len={need}"
        )
    if bool(model.get("causal", False)) != causal:
        raise ValueError(
            f"method {name!r} needs a {'causal decoder' if causal else 'bidirectional encoder'}:"
            f" set --config.model.causal={causal}"
        )
    width, heads = model.get("width"), model.get("num_heads")
    if width is not None and heads is not None and width % heads:
        raise ValueError(f"model.width={width} is not divisible by model.num_heads={heads}")
    return tok


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
