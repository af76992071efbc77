"""Text corruptions: BERT masking statistics, span/whole-word selection, noise and order change."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.augment import text as aug
from jaxssl.data import tokenizers

V, NS = 262, tokenizers.NUM_SPECIAL
REPL = jnp.arange(NS, V, dtype=jnp.int32)  # the byte tokenizer's non-special ids
B, L = 512, 64


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    tokens = rng.integers(NS, V, (B, L)).astype(np.int32)
    lengths = rng.integers(20, L + 1, B)
    valid = np.arange(L)[None] < lengths[:, None]
    tokens[:, 0] = tokenizers.CLS_ID  # a special token that must never be selected
    tokens[rng.random((B, L)) < 0.05] = tokenizers.EOS_ID
    tokens[~valid] = tokenizers.PAD_ID
    eligible = valid & (tokens >= NS)
    return jnp.asarray(tokens), jnp.asarray(valid), jnp.asarray(eligible)


def test_bert_masking_statistics(batch):
    tokens, valid, eligible = batch

    def mask_one(key, tok, elig):
        k1, k2 = jax.random.split(key)
        sel = aug.select_tokens(k1, elig, 0.15)
        out = aug.corrupt(k2, tok, sel, mask_id=tokenizers.MASK_ID, replacements=REPL)
        return out, sel

    out, sel = jax.jit(lambda k: aug.batched(mask_one, k, tokens, eligible))(jax.random.PRNGKey(0))
    out, sel, tokens, eligible = map(np.asarray, (out, sel, tokens, eligible))
    # Exactly round(15%) of each sequence's eligible tokens; never special or padding.
    np.testing.assert_array_equal(sel.sum(1), np.maximum(1, np.round(0.15 * eligible.sum(1))))
    assert not (sel & ~eligible).any()
    assert (out[~sel] == tokens[~sel]).all()  # unselected positions are untouched
    n = sel.sum()
    frac_mask = (out[sel] == tokenizers.MASK_ID).sum() / n
    changed = (out[sel] != tokens[sel]) & (out[sel] != tokenizers.MASK_ID)
    frac_random = changed.sum() / n
    # 80/10/10 within ~4 binomial standard deviations (n ~ 4,000 selected tokens).
    assert abs(frac_mask - 0.8) < 4 * np.sqrt(0.16 / n)
    assert abs(frac_random - 0.1 * (1 - 1 / (V - NS))) < 4 * np.sqrt(0.09 / n)
    assert (out[sel][changed] >= NS).all()  # random replacements are never special tokens
    # Different examples get different keys: their selections differ.
    assert not (sel[0] == sel[1]).all()


def test_span_selection_uses_exactly_the_budget(batch):
    _, _, eligible = batch
    sel = np.asarray(
        aug.batched(lambda k, e: aug.select_spans(k, e, 0.15), jax.random.PRNGKey(1), eligible)
    )
    # SpanBERT: spans until the budget is spent, so every sequence has round(15%) selected
    # (as BERT's token masking), not fewer because spans overlap or hit special tokens.
    n_eligible = np.asarray(eligible).sum(1)
    np.testing.assert_array_equal(sel.sum(1), np.maximum(1, np.round(0.15 * n_eligible)))
    assert not (sel & ~np.asarray(eligible)).any()
    runs = np.diff(np.concatenate([np.zeros((B, 1)), sel, np.zeros((B, 1))], 1), axis=1)
    mean_run = sel.sum() / (runs == 1).sum()
    assert mean_run > 2.0  # spans, not isolated tokens


def test_whole_word_selection_takes_whole_words():
    tok = tokenizers.ByteTokenizer()
    text = " ".join(["alpha", "be", "gamma", "delta", "e", "zeta"] * 10)
    ids = jnp.asarray(tok.encode(text))
    special = jnp.asarray(tok.is_special())
    starts = aug.word_starts(
        ids, jnp.asarray(tok.is_space()), jnp.asarray(tok.word_initial()), special
    )
    words = text.split(" ")
    assert int(starts.sum()) == len(words)
    eligible = ~jnp.asarray(tok.is_space())[ids]
    sel = np.asarray(
        aug.batched(
            lambda k, e: aug.select_words(k, e, starts, 0.3),
            jax.random.PRNGKey(2),
            jnp.tile(eligible, (200, 1)),
        )
    )
    word_id = np.cumsum(np.asarray(starts)) - 1
    for row in sel[:20]:
        for w in range(len(words)):  # every word is fully in or fully out
            chars = row[(word_id == w) & np.asarray(eligible)]
            assert chars.all() or not chars.any()
    per_word = np.array(
        [
            [row[(word_id == w) & np.asarray(eligible)].any() for w in range(len(words))]
            for row in sel
        ]
    )
    assert abs(per_word.mean() - 0.3) < 0.03


def test_replace_and_delete_tokens(batch):
    tokens, valid, eligible = batch
    key = jax.random.PRNGKey(3)
    # Specials need not be contiguous (BERT: 0 and 100-103): draws come from the table only.
    holes = np.r_[np.arange(NS), np.arange(100, 104)]
    repl = jnp.asarray(np.setdiff1d(np.arange(V), holes), jnp.int32)
    rep = np.asarray(
        aug.batched(
            lambda k, t, e: aug.replace_tokens(k, t, e, 0.2, replacements=repl),
            key,
            tokens,
            eligible,
        )
    )
    t, v, e = map(np.asarray, (tokens, valid, eligible))
    assert (rep[~e] == t[~e]).all() and (rep >= 0).all()
    assert abs((rep != t)[e].mean() - 0.2 * (1 - 1 / len(repl))) < 0.01
    assert not np.isin(rep[rep != t], holes).any()
    out, new_valid = aug.batched(
        lambda k, t, v, e: aug.delete_tokens(k, t, v, e, 0.2), key, tokens, valid, eligible
    )
    out, new_valid = np.asarray(out), np.asarray(new_valid).astype(bool)
    for i in range(50):
        kept = out[i][new_valid[i]]
        # The kept tokens are an in-order subsequence of the original; specials all survive.
        it = iter(t[i][v[i]])
        assert all(any(x == y for y in it) for x in kept)
        assert (kept < NS).sum() == (t[i][v[i]] < NS).sum()
        assert (out[i][~new_valid[i]] == 0).all() and new_valid[i][: new_valid[i].sum()].all()
    dropped = 1 - new_valid.sum() / v.sum()
    assert abs(dropped - 0.2 * e.sum() / v.sum()) < 0.01


def test_span_masking_and_segment_permutation(batch):
    tokens, valid, eligible = batch
    key = jax.random.PRNGKey(4)
    masked = np.asarray(
        aug.batched(
            lambda k, t, e: aug.mask_spans(k, t, e, 0.2, mask_id=tokenizers.MASK_ID),
            key,
            tokens,
            eligible,
        )
    )
    t, v = np.asarray(tokens), np.asarray(valid)
    assert ((masked == t) | (masked == tokenizers.MASK_ID)).all()

    def permute(k, tok, val):
        kb, kp = jax.random.split(k)
        return aug.permute_segments(kp, tok, val, aug.random_boundaries(kb, val, 4))

    out = np.asarray(aug.batched(permute, key, tokens, valid))
    moved = 0
    for i in range(100):
        n = v[i].sum()
        assert sorted(out[i][:n]) == sorted(t[i][:n])  # a permutation of the real tokens
        assert (out[i][n:] == 0).all()  # padding stays at the end
        moved += not (out[i] == t[i]).all()
    assert moved > 50
    # Sentence order change: sentences move whole.
    tok = tokenizers.ByteTokenizer()
    s = ["One fish.", " Two fish.", " Red fish.", " Blue fish."]
    ids = jnp.asarray(tok.encode("".join(s)))
    ends = jnp.zeros(V, bool).at[tok.encode(".!?")].set(True)
    val = jnp.ones(ids.shape, bool)
    bounds = aug.sentence_boundaries(ids, val, ends)
    assert int(bounds.sum()) == 4
    for seed in range(5):
        out = tok.decode(aug.permute_segments(jax.random.PRNGKey(seed), ids, val, bounds))
        parts = sorted(p.strip() for p in out.replace(".", ".|").split("|") if p.strip())
        assert parts == sorted(p.strip() for p in s)
