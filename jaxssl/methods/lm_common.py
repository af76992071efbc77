"""Shared by the language-model methods: token tables, the denoising recipe, held-out eval."""

import collections
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxssl import sharding as mesh_lib
from jaxssl.augment import text as text_aug
from jaxssl.data import pipeline, sources, tokenizers
from jaxssl.data import text as text_data
from jaxssl.methods import base

EVAL_IN_FLIGHT = 2  # held-out batches dispatched before the oldest one's sums are read
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
    seq_len = text_data.seq_len_of(config.dataset)
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


def replacement_ids(tok: tokenizers.Tokenizer) -> jax.Array:
    """int32 [R]: the ids random-token noise draws from (every non-special id of tok)."""
    return jnp.asarray(np.flatnonzero(~tok.is_special()), jnp.int32)


def mask_id_of(tok: tokenizers.Tokenizer, needed_by: str) -> int:
    """tok's [MASK] id; ValueError naming the fix when the tokenizer has none (GPT-2's)."""
    if tok.mask_id is None:
        raise ValueError(
            f"{needed_by} needs a [MASK] token and {tok!r} has none: set "
            "--config.dataset.tokenizer to one with a mask token (BERT's, byte, or a jaxssl BPE)"
        )
    return int(tok.mask_id)


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
    pending: collections.deque = collections.deque()

    def add(out: dict[str, jax.Array]) -> None:
        for k, v in jax.device_get(out).items():
            totals[k] = totals.get(k, 0.0) + float(v)

    for i, local in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        pending.append(fn(params, model_state, mesh_lib.to_global_batch(local, mesh), jnp.int32(i)))
        # A batch's sums are read once EVAL_IN_FLIGHT later batches are queued: the host reads
        # input while the devices compute, and no more than that many batches wait on them.
        if len(pending) > EVAL_IN_FLIGHT:
            add(pending.popleft())
    while pending:
        add(pending.popleft())
    return totals


def most_frequent_token(source: Any, special: np.ndarray, max_records: int = 4096) -> int:
    """The commonest non-special token of a text source (its stream, or its first records)."""
    if hasattr(source, "tokens"):  # a stream [N] or windows [N, L] (corpora:)
        ids = np.asarray(source.tokens).reshape(-1)
    else:
        n = min(len(source), max_records)
        ids = np.concatenate(
            [source[i]["tokens"][source[i]["attention_mask"] > 0] for i in range(n)]
        )
    counts = np.bincount(ids, minlength=len(special))[: len(special)]
    counts[special] = 0
    return int(np.argmax(counts))


# method.corruption: a BART-style noising recipe for the training input; all off by default.
CORRUPTION_DEFAULTS = {
    "token_noise": 0.0,  # fraction of eligible tokens replaced by random tokens
    "infill": 0.0,  # fraction of eligible tokens in spans, each span -> one [MASK]
    "deletion": 0.0,  # fraction of eligible tokens in spans that are deleted
    "permute": "none",  # "none" | "sentence" | "span" (num_segments random segments)
    "num_segments": 4,
    "mean_span": 3.0,  # mean geometric span length of infilling and deletion
}
PERMUTES = ("none", "sentence", "span")
CORRUPTION_OPTIONS = {
    "corruption": base.Option(CORRUPTION_DEFAULTS, "BART-style noising of the training input")
}
SENTENCE_END = (".", "!", "?")


def corruption_block() -> ml_collections.ConfigDict:
    """The method.corruption block with every stage off (the uncorrupted objective)."""
    return ml_collections.ConfigDict(dict(CORRUPTION_DEFAULTS))


def sentence_ends(tok: tokenizers.Tokenizer) -> np.ndarray:
    """bool [vocab]: tokens whose text ends a sentence (., !, ? before optional whitespace)."""
    special = tok.is_special()
    return np.array(
        [
            not special[i] and tok.decode(np.array([i])).rstrip().endswith(SENTENCE_END)
            for i in range(tok.vocab_size)
        ]
    )


class Corruption:
    """method.corruption applied on device to a training batch, one key per example.

    enabled is False when every stage is off: callers then skip it (and its key) entirely,
    so the objective is exactly the uncorrupted one. Raises ValueError for a bad key.
    """

    def __init__(self, config: ml_collections.ConfigDict, tok: tokenizers.Tokenizer):
        given = config.method.get("corruption") or {}
        given = dict(given.to_dict() if hasattr(given, "to_dict") else given)
        unknown = sorted(set(given) - set(CORRUPTION_DEFAULTS))
        if unknown:
            raise ValueError(
                f"method.corruption has unknown keys {unknown}: use {sorted(CORRUPTION_DEFAULTS)}"
            )
        self.cfg = {**CORRUPTION_DEFAULTS, **given}
        for k in ("token_noise", "infill", "deletion"):
            if not 0.0 <= self.cfg[k] < 1.0:
                raise ValueError(f"method.corruption.{k}={self.cfg[k]} must be in [0, 1)")
        if self.cfg["permute"] not in PERMUTES:
            raise ValueError(
                f"method.corruption.permute={self.cfg['permute']!r}: use one of {PERMUTES}"
            )
        if self.cfg["num_segments"] < 2 or self.cfg["mean_span"] < 1:
            raise ValueError("method.corruption.num_segments must be >= 2 and mean_span >= 1")
        self.enabled = any(self.cfg[k] > 0 for k in ("token_noise", "infill", "deletion")) or (
            self.cfg["permute"] != "none"
        )
        vocab = config.model.vocab_size
        self.special = padded_table(tok.is_special(), vocab, True)
        sentence = self.cfg["permute"] == "sentence"  # the table costs a decode per id
        ends = sentence_ends(tok) if sentence else np.zeros(tok.vocab_size, bool)
        self.ends = padded_table(ends, vocab, False)
        self.replacements = replacement_ids(tok)
        self.mask_id = mask_id_of(tok, "method.corruption.infill") if self.cfg["infill"] else 0

    def example(self, key: jax.Array, tokens: jax.Array, valid: jax.Array):
        """(noisy tokens, noisy valid) of one [L] sequence."""
        return text_aug.denoising_noise(
            key,
            tokens,
            valid,
            special=self.special,
            ends=self.ends,
            mask_id=self.mask_id,
            replacements=self.replacements,
            **self.cfg,
        )

    def __call__(self, key: jax.Array, tokens: jax.Array, valid: jax.Array):
        """(noisy tokens, noisy valid) of a [B, L] batch; example i uses fold_in(key, i)."""
        return text_aug.batched(self.example, key, tokens, valid)

    def describe(self) -> str:
        """The active stages, for eval_protocol / logs."""
        if not self.enabled:
            return "none"
        return ", ".join(f"{k}={v}" for k, v in self.cfg.items() if v not in (0.0, "none"))
