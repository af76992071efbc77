"""Pure on-device text corruptions over int32 token ids: MLM masking, noise, span masking, order.

Each function takes one example ([L] arrays) and a key; `batched` vmaps any of them with one
key per example. Everything is a select of cheap ops (no lax.cond), so vmap costs no branches.
Positions where `eligible` is False (special tokens, padding) are never changed or selected.
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp


def batched(fn: Callable, key: jax.Array, *args, **kwargs):
    """fn applied to each example of [B, ...] args with its own key (fold_in of the index)."""
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(args[0].shape[0]))
    return jax.vmap(lambda k, *a: fn(k, *a, **kwargs))(keys, *args)


def select_tokens(key: jax.Array, eligible: jax.Array, rate: float) -> jax.Array:
    """Exactly max(1, round(rate * #eligible)) eligible positions, uniformly (BERT)."""
    n = eligible.sum()
    k = jnp.where(n > 0, jnp.maximum(1, jnp.round(rate * n)), 0)
    scores = jnp.where(eligible, jax.random.uniform(key, eligible.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(scores))
    return (rank < k) & eligible


def select_spans(
    key: jax.Array, eligible: jax.Array, rate: float, mean_span: float = 3.0, max_span: int = 10
) -> jax.Array:
    """SpanBERT: whole spans until exactly max(1, round(rate * #eligible)) tokens are selected.

    Each span starts at a random not-yet-selected eligible position and has a geometric length
    (mean ~mean_span, clipped to max_span); the last span is cut to the budget. A fixed number
    of iterations (each span adds at least one token) keeps the shapes static under jit.
    """
    length = eligible.shape[-1]
    n = eligible.sum()
    budget = jnp.where(n > 0, jnp.maximum(1, jnp.round(rate * n)), 0).astype(jnp.int32)
    max_spans = max(1, math.ceil(rate * length))  # >= the budget of any sequence
    k_len, k_start = jax.random.split(key)
    p = 1.0 / mean_span
    u = jax.random.uniform(k_len, (max_spans,), minval=1e-6, maxval=1.0)
    lengths = jnp.clip(1 + jnp.floor(jnp.log(u) / jnp.log1p(-p)), 1, max_span)
    pos = jnp.arange(length)

    def add_span(i, selected):
        free = eligible & ~selected
        score = jnp.where(free, jax.random.uniform(jax.random.fold_in(k_start, i), (length,)), -1)
        start = jnp.argmax(score)
        span = free & (pos >= start) & (pos < start + lengths[i])
        remaining = budget - selected.sum()
        return selected | (span & (jnp.cumsum(span) <= remaining))

    return jax.lax.fori_loop(0, max_spans, add_span, jnp.zeros(length, bool))


def word_starts(
    tokens: jax.Array, is_space: jax.Array, word_initial: jax.Array, special: jax.Array
) -> jax.Array:
    """bool [L]: a token that begins a word (after whitespace/special, or with a space marker)."""
    space, initial, spec = is_space[tokens], word_initial[tokens], special[tokens]
    prev_break = jnp.concatenate([jnp.ones((1,), bool), (space | spec)[:-1]])
    return ~space & ~spec & (initial | prev_break)


def select_words(key: jax.Array, eligible: jax.Array, starts: jax.Array, rate: float) -> jax.Array:
    """Whole-word selection: each word (start token + its continuations) with probability rate."""
    word = jnp.cumsum(starts)  # word index of every token
    u = jax.random.uniform(key, eligible.shape)
    return (u[word] < rate) & eligible


def random_tokens(key: jax.Array, shape: tuple[int, ...], replacements: jax.Array) -> jax.Array:
    """Uniform draws from replacements (int32 [R]: the tokenizer's non-special ids, which a
    pretrained tokenizer need not keep contiguous: BERT's specials sit at 0 and 100-103)."""
    return replacements[jax.random.randint(key, shape, 0, replacements.shape[0])]


def corrupt(
    key: jax.Array,
    tokens: jax.Array,
    selected: jax.Array,
    *,
    mask_id: int,
    replacements: jax.Array,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> jax.Array:
    """BERT's 80/10/10: selected -> [MASK] / a random non-special token / unchanged."""
    k_u, k_tok = jax.random.split(key)
    u = jax.random.uniform(k_u, tokens.shape)
    rand = random_tokens(k_tok, tokens.shape, replacements)
    out = jnp.where(selected & (u < mask_frac), mask_id, tokens)
    return jnp.where(selected & (u >= mask_frac) & (u < mask_frac + random_frac), rand, out)


def replace_tokens(
    key: jax.Array,
    tokens: jax.Array,
    eligible: jax.Array,
    rate: float,
    *,
    replacements: jax.Array,
) -> jax.Array:
    """Noise injection: each eligible token becomes a random non-special token with prob rate."""
    k_sel, k_tok = jax.random.split(key)
    hit = jax.random.bernoulli(k_sel, rate, tokens.shape) & eligible
    return jnp.where(hit, random_tokens(k_tok, tokens.shape, replacements), tokens)


def delete_tokens(
    key: jax.Array,
    tokens: jax.Array,
    valid: jax.Array,
    eligible: jax.Array,
    rate: float,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Noise injection: drop eligible tokens with prob rate, shift the rest left, pad the end."""
    drop = jax.random.bernoulli(key, rate, tokens.shape) & eligible
    return delete_positions(tokens, valid, drop, pad_id)


def mask_spans(
    key: jax.Array,
    tokens: jax.Array,
    eligible: jax.Array,
    rate: float,
    *,
    mask_id: int,
    mean_span: float = 3.0,
) -> jax.Array:
    """Context modification: replace geometric-length spans (~rate of tokens) by [MASK]."""
    return jnp.where(select_spans(key, eligible, rate, mean_span), mask_id, tokens)


def random_boundaries(key: jax.Array, valid: jax.Array, num_segments: int) -> jax.Array:
    """bool [L]: num_segments - 1 random cut points inside the valid prefix (plus position 0)."""
    n = valid.sum()
    pos = jnp.arange(valid.shape[0])
    scores = jnp.where((pos > 0) & valid, jax.random.uniform(key, valid.shape), 2.0)
    rank = jnp.argsort(jnp.argsort(scores))
    return (pos == 0) | ((rank < num_segments - 1) & (pos < n))


def sentence_boundaries(tokens: jax.Array, valid: jax.Array, ends: jax.Array) -> jax.Array:
    """bool [L]: sentence starts = position 0 and every token after a sentence-end token."""
    after_end = jnp.concatenate([jnp.ones((1,), bool), ends[tokens][:-1]])
    return after_end & valid | (jnp.arange(tokens.shape[0]) == 0)


def permute_segments(
    key: jax.Array, tokens: jax.Array, valid: jax.Array, boundaries: jax.Array
) -> jax.Array:
    """Order change: shuffle the segments that start at `boundaries`; padding stays at the end."""
    length = tokens.shape[0]
    seg = jnp.cumsum(boundaries) - 1  # segment id of every token
    perm_rank = jax.random.permutation(key, length)  # a random rank for every segment id
    sort_key = jnp.where(valid, perm_rank[jnp.clip(seg, 0, length - 1)], length)
    order = jnp.lexsort((jnp.arange(length), sort_key))  # by segment rank, then position
    return tokens[order]


def delete_positions(
    tokens: jax.Array, valid: jax.Array, drop: jax.Array, pad_id: int = 0
) -> tuple[jax.Array, jax.Array]:
    """Removes the positions where drop is True, shifts the rest left, pads the end."""
    keep = valid & ~drop
    order = jnp.argsort(~keep, stable=True)  # kept tokens first, in their original order
    new_valid = jnp.arange(tokens.shape[0]) < keep.sum()
    return jnp.where(new_valid, tokens[order], pad_id), new_valid.astype(valid.dtype)


def delete_spans(
    key: jax.Array,
    tokens: jax.Array,
    valid: jax.Array,
    eligible: jax.Array,
    rate: float,
    mean_span: float = 3.0,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Span deletion: geometric spans covering round(rate * #eligible) tokens are removed."""
    return delete_positions(tokens, valid, select_spans(key, eligible, rate, mean_span), pad_id)


def infill_spans(
    key: jax.Array,
    tokens: jax.Array,
    valid: jax.Array,
    eligible: jax.Array,
    rate: float,
    *,
    mask_id: int,
    mean_span: float = 3.0,
    pad_id: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """BART text infilling: each run of selected span tokens becomes ONE [MASK] (length changes).

    Spans cover round(rate * #eligible) tokens (select_spans); the model is not told how many
    tokens a [MASK] stands for. Adjacent spans merge into one run, hence one [MASK].
    """
    sel = select_spans(key, eligible, rate, mean_span)
    start = sel & ~jnp.concatenate([jnp.zeros((1,), bool), sel[:-1]])
    return delete_positions(jnp.where(start, mask_id, tokens), valid, sel & ~start, pad_id)


def denoising_noise(
    key: jax.Array,
    tokens: jax.Array,
    valid: jax.Array,
    *,
    special: jax.Array,
    ends: jax.Array,
    mask_id: int,
    replacements: jax.Array,
    token_noise: float = 0.0,
    infill: float = 0.0,
    deletion: float = 0.0,
    permute: str = "none",
    num_segments: int = 4,
    mean_span: float = 3.0,
) -> tuple[jax.Array, jax.Array]:
    """One example through a BART-style noising recipe; (noisy tokens, noisy valid) [L].

    In order: order change (permute "sentence": sentences ending at `ends` tokens, "span":
    num_segments random segments), text infilling (spans -> one [MASK]), span deletion, then
    random-token noise. Rates are fractions of the eligible (valid, non-special) tokens; a
    zero rate or permute="none" skips that stage entirely (decided in Python, not traced).
    """
    k_perm, k_infill, k_del, k_tok = jax.random.split(key, 4)
    if permute == "sentence":
        tokens = permute_segments(k_perm, tokens, valid, sentence_boundaries(tokens, valid, ends))
    elif permute == "span":
        k_b, k_p = jax.random.split(k_perm)
        tokens = permute_segments(k_p, tokens, valid, random_boundaries(k_b, valid, num_segments))
    if infill > 0:
        eligible = valid & ~special[tokens]
        tokens, valid = infill_spans(
            k_infill, tokens, valid, eligible, infill, mask_id=mask_id, mean_span=mean_span
        )
    if deletion > 0:
        eligible = valid & ~special[tokens]
        tokens, valid = delete_spans(k_del, tokens, valid, eligible, deletion, mean_span)
    if token_noise > 0:
        eligible = valid & ~special[tokens]
        tokens = replace_tokens(
            k_tok,
            tokens,
            eligible,
            token_noise,
            replacements=replacements,
        )
    return tokens, valid
