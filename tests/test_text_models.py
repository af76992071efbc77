"""Transformer and LM methods: causal/padding masks, losses vs numpy, 1 vs 8 devices, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import generate, methods
from jaxssl import sharding as mesh_lib
from jaxssl.augment import text as text_aug
from jaxssl.data import sources, tokenizers
from jaxssl.models.transformer import Transformer, attend
from jaxssl.train import optim
from jaxssl.train import step as step_lib

from .helpers import ROOT
from .text_helpers import corpus_file, tiny_text_config

TINY = dict(vocab_size=40, width=32, depth=2, num_heads=2, mlp_dim=64, max_len=12)


def _log_softmax_nll(logits, targets):
    logits = np.asarray(logits, np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(logits, targets[..., None], -1)[..., 0]


@pytest.fixture(scope="module")
def ids():
    return jnp.asarray(np.random.default_rng(0).integers(6, 40, (2, 12)), jnp.int32)


def test_causal_decoder_never_sees_the_future(ids):
    model = Transformer(**TINY, causal=True)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), ids)
    fn = jax.jit(lambda p, x: model.apply(p, x)[1]["tokens"])
    base = fn(params, ids)
    changed = fn(params, ids.at[:, 7].set((ids[:, 7] + 1) % 40))
    np.testing.assert_allclose(base[:, :7], changed[:, :7], atol=1e-6)  # earlier: unchanged
    assert np.abs(base[:, 7:] - changed[:, 7:]).max() > 1e-4  # later: changed


def test_attention_equals_jax_reference_with_causal_and_padding_masks():
    # The model's one mask (padding & lower triangle) through flax's einsum form must give
    # what jax.nn.dot_product_attention computes from the padding mask and is_causal.
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((3, 7, 2, 4)), jnp.float32) for _ in range(3))
    valid = jnp.asarray(np.arange(7)[None] < np.array([[7], [4], [1]]))  # 7, 4, 1 real tokens
    padding = valid[:, None, None, :]
    ours = attend(q, k, v, padding & jnp.tril(jnp.ones((7, 7), bool)))
    ref = jax.nn.dot_product_attention(q, k, v, mask=padding, is_causal=True)
    seen = np.asarray(valid)[:, :, None, None]  # padded queries: no real output to compare
    np.testing.assert_allclose(np.where(seen, ours, 0), np.where(seen, ref, 0), atol=1e-6)
    bidirectional = attend(q, k, v, padding)
    np.testing.assert_allclose(
        bidirectional, jax.nn.dot_product_attention(q, k, v, mask=padding), atol=1e-6
    )
    # bfloat16 in, bfloat16 out (the weighted sum in bfloat16), within bfloat16's precision.
    half = [x.astype(jnp.bfloat16) for x in (q, k, v)]
    out = attend(*half, padding)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(out), np.float32(bidirectional), atol=0.03)


def test_encoder_padding_mask_and_pooling(ids):
    model = Transformer(**TINY, causal=False, tie_embeddings=False)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), ids)
    mask = jnp.arange(12)[None] < jnp.array([[8], [12]])
    fn = jax.jit(lambda p, x: model.apply(p, x, attention_mask=mask)[1])
    base = fn(params, ids)
    noisy = fn(params, ids.at[0, 8:].set(3))  # change only padding positions of row 0
    np.testing.assert_allclose(base["pooled"], noisy["pooled"], atol=1e-6)
    np.testing.assert_allclose(base["tokens"][0, :8], noisy["tokens"][0, :8], atol=1e-6)
    np.testing.assert_allclose(base["pooled"][0], base["tokens"][0, :8].mean(0), atol=1e-5)
    assert base["tokens"][0, 0].shape == (32,)
    # Bidirectional: changing the last real token changes the first position.
    other = fn(params, ids.at[0, 7].set((ids[0, 7] + 1) % 40))
    assert np.abs(other["tokens"][0, 0] - base["tokens"][0, 0]).max() > 1e-4

    def lm(m, x):  # the path a language-model head takes: encoder then output embedding
        return m.logits(m(x)[1]["tokens"])

    untied = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids, method=lm))["params"]
    assert "out" in untied and "out_bias" not in untied
    tied = jax.eval_shape(lambda: Transformer(**TINY).init(jax.random.PRNGKey(0), ids, method=lm))
    tied = tied["params"]
    assert "out_bias" in tied and "out" not in tied
    # remat recomputes activations only: same outputs, and the backward pass really does
    # recompute each block's matmuls (more dot_generals in the gradient's program).
    remat = Transformer(**TINY, causal=False, tie_embeddings=False, remat=True)
    out = jax.jit(lambda p, x: remat.apply(p, x, attention_mask=mask)[1])(params, ids)
    np.testing.assert_allclose(out["tokens"], base["tokens"], atol=1e-5)

    def grad_program(m):
        loss = lambda p: m.apply(p, ids, attention_mask=mask)[1]["pooled"].sum()  # noqa: E731
        return str(jax.make_jaxpr(jax.grad(loss))(params))

    dots = grad_program(model).count("dot_general")
    assert grad_program(remat).count("dot_general") >= dots + 2 * 4  # 4 matmuls per block


@pytest.fixture(scope="module")
def setups(tmp_path_factory):
    path = corpus_file(tmp_path_factory.mktemp("text"))
    out = {}
    for name in ("mlm", "causal_lm", "simcse"):
        config = tiny_text_config(name, f"text:{path}")
        source = sources.get_source(config.dataset, "train")
        batch = {k: np.stack([source[i][k] for i in range(16)]) for k in source[0]}
        batch["attention_mask"][3, 9:] = 0  # a padded row: padding must not count
        batch["tokens"][3, 9:] = 0
        out[name] = (config, batch)
    return out


@pytest.fixture(scope="module")
def states(setups):
    """One single-device (method, state) per method, shared by the loss and sampling tests."""
    return {n: _state(c, b, jax.devices()[:1]) for n, (c, b) in setups.items()}


def _state(config, batch, devices):
    mesh = mesh_lib.make_mesh(devices)
    method = methods.get_method(config)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    return method, tx, mesh, step_lib.init_state(method, tx, config.seed, batch, mesh)


def test_mlm_loss_counts_only_selected_positions(setups, states):
    config, batch = setups["mlm"]
    method, _, _, state = states["mlm"]
    rng = jax.random.PRNGKey(7)
    loss, (metrics, _) = jax.jit(method.loss)(state.params, state.model_state, batch, rng, 0)
    # Independent recomputation: same masking key, numpy cross-entropy on selected positions.
    k_mask, _ = jax.random.split(rng)
    valid = batch["attention_mask"] > 0
    inputs, sel = text_aug.batched(
        method.mask_example, k_mask, jnp.asarray(batch["tokens"]), jnp.asarray(valid)
    )
    logits = jax.jit(lambda p, x: method.net.apply({"params": p}, x, valid, train=False))(
        state.params, inputs
    )
    sel = np.asarray(sel)
    nll = _log_softmax_nll(logits, batch["tokens"])
    np.testing.assert_allclose(loss, nll[sel].mean(), rtol=1e-5)
    acc = (np.argmax(logits, -1) == batch["tokens"])[sel].mean()
    np.testing.assert_allclose(metrics["masked_accuracy"], acc, rtol=1e-5)
    assert not sel[3, 9:].any() and sel.sum() > 0
    assert (np.asarray(inputs)[~sel] == batch["tokens"][~sel]).all()


def test_mlm_random_tokens_come_from_the_tokenizer_vocabulary(setups):
    """A model vocabulary larger than the tokenizer's (BERT-base shape on bytes): random
    replacements are still ids the tokenizer produces, never unused embedding rows."""
    config, batch = setups["mlm"]
    config = config.copy_and_resolve_references()
    config.model.vocab_size = 4096
    config.method.update(mask_token_frac=0.0, random_token_frac=1.0)  # every selected: random
    method = methods.get_method(config)
    tokens = jnp.asarray(np.tile(batch["tokens"], (8, 1)))
    valid = jnp.asarray(np.tile(batch["attention_mask"], (8, 1)) > 0)
    inputs, sel = text_aug.batched(method.mask_example, jax.random.PRNGKey(3), tokens, valid)
    replaced = np.asarray(inputs)[np.asarray(sel)]
    assert replaced.size > 100
    assert replaced.min() >= tokenizers.NUM_SPECIAL
    assert replaced.max() < tokenizers.ByteTokenizer().vocab_size == 262


def test_causal_lm_loss_is_shifted_next_token_nll(setups, states):
    config, batch = setups["causal_lm"]
    method, _, _, state = states["causal_lm"]
    loss, _ = jax.jit(method.loss)(state.params, state.model_state, batch, jax.random.PRNGKey(0), 0)
    inputs, valid = batch["tokens"][:, :-1], batch["attention_mask"][:, :-1] > 0
    logits = jax.jit(method.logits)(state.params, inputs, valid)
    nll = _log_softmax_nll(logits, batch["tokens"][:, 1:])
    w = batch["attention_mask"][:, 1:] > 0
    np.testing.assert_allclose(loss, nll[w].mean(), rtol=1e-5)


@pytest.mark.parametrize(
    "name", [n for n in methods.METHODS if (ROOT / "configs" / f"{n}_pydoc.py").exists()]
)
def test_one_device_equals_eight_devices(setups, name):
    config, batch = setups[name]
    # SGD, not Adam: Adam turns float-rounding noise in exactly-zero gradients (the key bias)
    # into +-lr steps, which would compare noise rather than the step.
    config = config.copy_and_resolve_references()
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.5
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        method, tx, mesh, state = _state(config, batch, devices)
        schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
        step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, mesh)
        init = jax.device_get(state.params)
        for _ in range(2):  # warmup step 0 has lr 0
            state, metrics = step(state, mesh_lib.to_global_batch(batch, mesh))
        results.append((jax.device_get(state.params), jax.device_get(metrics)))
    (p1, m1), (p8, m8) = results
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    moved = max(
        np.abs(a - b).max() for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(init), strict=True)
    )
    assert moved > 1e-4


def test_sampling_greedy_matches_a_manual_loop_and_respects_bans(setups, states):
    config, batch = setups["causal_lm"]
    method, _, _, state = states["causal_lm"]
    params, vocab = state.params, config.model.vocab_size
    prompt = jnp.asarray(batch["tokens"][:2, :5])
    max_len = config.model.max_len  # 16: the 14 generated tokens slide the window

    def run(key, temperature, top_k=0, banned=None):
        return np.asarray(
            jax.jit(
                lambda p, x, k: generate.sample(
                    method.logits,
                    p,
                    x,
                    num_tokens=14,
                    max_len=max_len,
                    key=k,
                    temperature=temperature,
                    top_k=top_k,
                    banned=banned,
                )
            )(params, prompt, key)
        )

    out = run(jax.random.PRNGKey(0), 0.0)
    logits_fn = jax.jit(method.logits)
    manual = np.asarray(prompt)
    for _ in range(14):
        ctx = manual[:, -max_len:]
        if ctx.shape[1] < max_len:  # same jit shape throughout: right-pad, read position n-1
            n = ctx.shape[1]
            ctx = np.pad(ctx, ((0, 0), (0, max_len - n)))
        else:
            n = max_len
        nxt = np.argmax(np.asarray(logits_fn(params, jnp.asarray(ctx)))[:, n - 1], -1)
        manual = np.concatenate([manual, nxt[:, None]], 1)
    np.testing.assert_array_equal(out, manual)
    # top_k=1 sampling is greedy at any temperature; banned ids are never drawn.
    np.testing.assert_array_equal(run(jax.random.PRNGKey(1), 1.5, top_k=1), out)
    banned = jnp.zeros(vocab, bool).at[: vocab // 2].set(True)
    hot = run(jax.random.PRNGKey(2), 5.0, banned=banned)
    assert (hot[:, 5:] >= vocab // 2).all()
    hot2 = run(jax.random.PRNGKey(3), 5.0, banned=banned)
    assert not (hot == hot2).all()  # the key matters
