"""Denoising MLM / causal LM (noisy inputs, clean targets) and SimCSE, against recomputations."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxssl import losses, methods
from jaxssl import sharding as mesh_lib
from jaxssl.augment import text as aug
from jaxssl.data import sources, tokenizers
from jaxssl.methods import lm_common

from .text_helpers import corpus_file, tiny_text_config

NOISE = {"token_noise": 0.1, "infill": 0.1, "deletion": 0.1, "permute": "sentence"}


def _nll(logits, targets):
    logits = np.asarray(logits, np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(logits, np.asarray(targets)[..., None], -1)[..., 0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return f"text:{corpus_file(tmp_path_factory.mktemp('text'))}"


def _setup(name, corpus, corruption=None, seq_len=24):
    config = tiny_text_config(name, corpus, seq_len=seq_len)
    if corruption is not None:
        config.method.corruption = ml_collections.ConfigDict(
            {**lm_common.CORRUPTION_DEFAULTS, **corruption}
        )
    source = sources.get_source(config.dataset, "train")
    batch = {k: np.stack([source[i][k] for i in range(8)]) for k in source[0]}
    method = methods.get_method(config)
    params, model_state = jax.jit(method.init)(jax.random.PRNGKey(0), batch)
    return config, method, params, model_state, batch


def _loss(method, params, model_state, batch, rng):
    return jax.jit(method.loss)(params, model_state, batch, rng, 0)


@pytest.mark.parametrize("name", ["mlm", "causal_lm"])
def test_corruption_off_is_todays_objective_bit_for_bit(corpus, name):
    _, plain, params, ms, batch = _setup(name, corpus)
    _, zeros, _, _, _ = _setup(name, corpus, corruption={})  # the block, every stage off
    _, noisy, _, _, _ = _setup(name, corpus, corruption=NOISE)
    rng = jax.random.PRNGKey(5)
    base, _ = _loss(plain, params, ms, batch, rng)
    assert not zeros.corruption.enabled and noisy.corruption.enabled
    np.testing.assert_array_equal(_loss(zeros, params, ms, batch, rng)[0], base)
    assert abs(float(_loss(noisy, params, ms, batch, rng)[0]) - float(base)) > 1e-3
    # Evaluation is unchanged by the training recipe: uncorrupted inputs.
    mesh = mesh_lib.make_mesh(jax.devices()[:1])
    np.testing.assert_allclose(
        noisy.evaluate(params, ms, mesh)["eval_loss"], plain.evaluate(params, ms, mesh)["eval_loss"]
    )


def _noisy(method, key, tokens, valid):
    """The recipe recomputed from augment/text.py, one fold_in(key, i) per example."""
    tok = tokenizers.ByteTokenizer()
    special = jnp.asarray(tok.is_special())
    ends = jnp.asarray(lm_common.sentence_ends(tok))
    out = [
        aug.denoising_noise(
            jax.random.fold_in(key, i),
            tokens[i],
            valid[i],
            special=special,
            ends=ends,
            mask_id=tokenizers.MASK_ID,
            replacements=jnp.arange(tokenizers.NUM_SPECIAL, 262, dtype=jnp.int32),
            **{**lm_common.CORRUPTION_DEFAULTS, **NOISE},
        )
        for i in range(tokens.shape[0])
    ]
    return np.stack([np.asarray(o[0]) for o in out]), np.stack([np.asarray(o[1]) for o in out])


def test_denoising_mlm_predicts_clean_tokens(corpus):
    _, method, params, ms, batch = _setup("mlm", corpus, corruption=NOISE)
    rng = jax.random.PRNGKey(7)
    loss, (metrics, _) = _loss(method, params, ms, batch, rng)
    tokens, valid = jnp.asarray(batch["tokens"]), jnp.asarray(batch["attention_mask"] > 0)
    k_mask, _ = jax.random.split(rng)
    masked, sel = aug.batched(method.mask_example, k_mask, tokens, valid)
    noisy, seen = _noisy(method, jax.random.fold_in(rng, 2), masked, valid)
    logits = jax.jit(lambda p, x, v: method.net.apply({"params": p}, x, v, train=False))(
        params, noisy, seen
    )
    clean = np.asarray(batch["tokens"])
    w = np.asarray(valid) & (np.asarray(sel) | (noisy != clean))
    np.testing.assert_allclose(loss, _nll(logits, clean)[w].mean(), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["masked_accuracy"], (np.argmax(logits, -1) == clean)[w].mean(), rtol=1e-5
    )
    assert (noisy != clean).sum() > (np.asarray(sel)).sum()  # noise beyond the MLM masking
    # Clean targets, not the noisy input: predicting the noisy tokens is a different loss.
    assert not np.isclose(_nll(logits, noisy)[w].mean(), float(loss), rtol=1e-4)


def test_denoising_causal_lm_predicts_clean_next_tokens(corpus):
    _, method, params, ms, batch = _setup("causal_lm", corpus, corruption=NOISE)
    rng = jax.random.PRNGKey(8)
    loss, _ = _loss(method, params, ms, batch, rng)
    tokens, valid = jnp.asarray(batch["tokens"]), jnp.asarray(batch["attention_mask"] > 0)
    noisy, seen = _noisy(method, jax.random.fold_in(rng, 2), tokens, valid)
    logits = jax.jit(method.logits)(params, jnp.asarray(noisy[:, :-1]), jnp.asarray(seen[:, :-1]))
    w = np.asarray(valid)[:, 1:]
    np.testing.assert_allclose(loss, _nll(logits, batch["tokens"][:, 1:])[w].mean(), rtol=1e-5)
    assert (noisy != np.asarray(tokens)).mean() > 0.2


def test_corruption_keys_are_per_example_and_stages_behave(corpus):
    config, method, *_ = _setup("mlm", corpus, corruption=NOISE)
    tok = tokenizers.ByteTokenizer()
    row = tok.encode("One fish. Two fish. Red fish. Blue fish. Old fish. New fish.")
    tokens = jnp.asarray(np.tile(row, (6, 1)))
    valid = jnp.ones(tokens.shape, bool)
    noisy, seen = method.corruption(jax.random.PRNGKey(0), tokens, valid)
    noisy, seen = np.asarray(noisy), np.asarray(seen)
    assert len({r.tobytes() for r in noisy}) == 6  # identical rows, distinct noise
    one, _ = method.corruption.example(
        jax.random.fold_in(jax.random.PRNGKey(0), 3), tokens[3], valid[3]
    )
    np.testing.assert_array_equal(one, noisy[3])
    # Infilling: every run of selected tokens becomes one [MASK]; the kept text keeps its order.
    key = jax.random.PRNGKey(1)
    eligible = jnp.asarray(row >= tokenizers.NUM_SPECIAL)
    out, v = aug.infill_spans(key, jnp.asarray(row), jnp.ones(len(row), bool), eligible, 0.3,
                              mask_id=tokenizers.MASK_ID)  # fmt: skip
    out, v = np.asarray(out)[np.asarray(v)], np.asarray(v)
    sel = np.asarray(aug.select_spans(key, eligible, 0.3))
    runs = (np.diff(np.concatenate([[0], sel.astype(int)])) == 1).sum()
    assert (out == tokenizers.MASK_ID).sum() == runs and len(out) == len(row) - sel.sum() + runs
    assert list(out[out != tokenizers.MASK_ID]) == list(row[~sel])
    deleted, dv = aug.delete_spans(key, jnp.asarray(row), jnp.ones(len(row), bool), eligible, 0.3)
    assert list(np.asarray(deleted)[np.asarray(dv)]) == list(row[~sel])
    assert lm_common.sentence_ends(tok)[tok.encode(".")[0]]
    bad = config.copy_and_resolve_references()
    bad.method.corruption.permute = "words"
    with pytest.raises(ValueError, match="permute"):
        methods.get_method(bad)


def test_simcse_loss_is_the_papers_infonce_over_dropout_views(corpus):
    config, method, params, ms, batch = _setup("simcse", corpus)
    assert config.model.dropout > 0 and not method.corruption.enabled
    rng = jax.random.PRNGKey(3)
    loss, (metrics, _) = _loss(method, params, ms, batch, rng)
    # Recomputed: one dropout pass over [x; x] with the key the method uses, SimCSE eq. 1.
    k_drop = jax.random.split(rng, 3)[0]
    x, v = np.concatenate([batch["tokens"]] * 2), np.concatenate([batch["attention_mask"]] * 2)
    z, _ = method.net.apply({"params": params}, x, v > 0, train=True, rngs={"dropout": k_drop})
    z = np.asarray(z, np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(batch["tokens"])
    sim = z[:n] @ z[n:].T / config.method.temperature
    expected = -np.mean(np.diag(sim) - np.log(np.exp(sim).sum(1)))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    np.testing.assert_allclose(metrics["contrastive_acc"], np.mean(sim.argmax(1) == np.arange(n)))
    assert not np.allclose(z[:n], z[n:], atol=1e-3)  # dropout makes two different views
    # info_nce_rows: the same loss per row; padding rows are no candidates.
    nll, _ = losses.info_nce_rows(z[:n], z[n:], config.method.temperature)
    np.testing.assert_allclose(nll.mean(), expected, rtol=1e-4)
    real = np.arange(n) < n - 2
    nll_m, _ = losses.info_nce_rows(z[:n], z[n:], config.method.temperature, jnp.asarray(real))
    sub = sim[: n - 2, : n - 2]
    np.testing.assert_allclose(nll_m[: n - 2], np.log(np.exp(sub).sum(1)) - np.diag(sub), rtol=1e-4)
    # Its own held-out evaluation on unlabelled text; no views -> a config error.
    out = method.evaluate(params, ms, mesh_lib.make_mesh(jax.devices()[:1]))
    assert 0 <= out["eval_contrastive_top1"] <= 1 and out["eval_contrastive_loss"] > 0
    bad = config.copy_and_resolve_references()
    bad.model.dropout = 0.0
    with pytest.raises(ValueError, match="two different views"):
        methods.get_method(bad)
    bad.method.corruption.token_noise = 0.2  # noise views instead of dropout: allowed
    assert methods.get_method(bad).corruption.enabled
