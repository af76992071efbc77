"""Causal generation with a key/value cache: the same logits as a full forward pass and the
same tokens as uncached decoding (greedy and sampled), for pre- and post-LN decoders."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import generate
from jaxssl.models.transformer import Transformer, init_cache

TINY = dict(vocab_size=40, width=32, depth=2, num_heads=2, mlp_dim=64, max_len=32, causal=True)


@pytest.fixture(scope="module", params=["pre", "post"])
def decoder(request):
    model = Transformer(**TINY, norm=request.param, output_bias=request.param == "pre")
    prompt = jnp.asarray(np.random.default_rng(0).integers(6, 40, (3, 5)), jnp.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), prompt)["params"]
    return model, params, prompt


def _logits(model, params, tokens):
    _, feats = model.apply({"params": params}, tokens)
    return model.apply({"params": params}, feats["tokens"], method=model.logits)


def test_prefill_and_steps_give_the_full_forward_logits(decoder):
    model, params, _ = decoder
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, 40, (2, 12)), jnp.int32)
    full = jax.jit(lambda p, x: _logits(model, p, x))(params, tokens)
    decode = jax.jit(lambda p, x, c, pos: model.apply({"params": p}, x, c, pos, method="decode"))
    cache = init_cache(model, 2, 12)
    first, cache = decode(params, tokens[:, :7], cache, 0)  # prefill 7 tokens
    steps = [first]
    for pos in range(7, 12):  # then one token at a time
        logits, cache = decode(params, tokens[:, pos : pos + 1], cache, pos)
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("temperature,top_k", [(0.0, 0), (0.8, 5)])
def test_cached_decoding_samples_the_uncached_tokens(decoder, temperature, top_k):
    model, params, prompt = decoder
    banned = jnp.zeros(40, bool).at[:6].set(True)
    opts = dict(
        num_tokens=20, key=jax.random.PRNGKey(3), temperature=temperature, top_k=top_k,
        banned=banned,
    )  # fmt: skip
    uncached = jax.jit(
        lambda p, x: generate.sample(
            lambda p, t: _logits(model, p, t), p, x, max_len=TINY["max_len"], **opts
        )
    )(params, prompt)
    cached = jax.jit(lambda p, x: generate.sample_cached(model, p, x, **opts))(params, prompt)
    np.testing.assert_array_equal(np.asarray(cached), np.asarray(uncached))
    assert (np.asarray(cached)[:, 5:] >= 6).all()  # bans hold


def test_the_cached_loop_has_fixed_shapes_and_one_compile(decoder):
    model, params, prompt = decoder
    fn = jax.jit(
        lambda p, x: generate.sample_cached(
            model, p, x, num_tokens=8, key=jax.random.PRNGKey(0), temperature=0.0
        )
    )
    jaxpr = str(jax.make_jaxpr(fn)(params, prompt))
    assert "scan" in jaxpr or "while" in jaxpr  # one loop over the new tokens, not unrolled
    fn(params, prompt)
    fn(params, prompt + 1)
    assert fn._cache_size() == 1
    with pytest.raises(ValueError, match="max_len"):
        init_cache(model, 1, TINY["max_len"] + 1)
