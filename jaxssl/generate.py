"""Sampling from a causal LM (greedy, temperature, top-k) and the `generate` job.

Job: python -m jaxssl.main --config CONFIG --workdir W --config.job=generate
reads W's newest checkpoint (when W has none: init_from, another run or a GPT-2 folder in
Hugging Face format, whose model block is then used), samples generate.num_samples
continuations of generate.prompt and writes them to W/samples.txt.

Decoding uses a key/value cache (`sample_cached`): one prefill of the prompt, then one token
per step against fixed-shape cache arrays, all inside one jitted fori_loop. It needs
prompt + num_tokens <= model.max_len (positions are absolute); longer generations fall back to
`sample`, which re-reads the last max_len tokens for every new token (a sliding window). Both
draw token t with the key fold_in(key, t), so they sample the same tokens.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from jaxssl import methods, sharding
from jaxssl.config import ConfigError
from jaxssl.data import text as text_data
from jaxssl.models import transformer as transformer_lib
from jaxssl.train import checkpoint
from jaxssl.train.skeleton import say

LogitsFn = Callable[[Any, jax.Array], jax.Array]


def filter_logits(
    logits: jax.Array, temperature: float, top_k: int, banned: jax.Array
) -> jax.Array:
    """Scaled logits with banned ids and everything below the k-th largest set to -inf."""
    logits = jnp.where(banned, -jnp.inf, logits.astype(jnp.float32))
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return logits / max(temperature, 1e-6)


def _choose(
    logits: jax.Array, pos: jax.Array, key: jax.Array, temperature: float, top_k: int, banned
) -> jax.Array:
    """Token ids [B] for position pos from next-token logits [B, V]."""
    ban = jnp.zeros(logits.shape[-1], bool) if banned is None else banned
    if temperature == 0:
        return jnp.argmax(jnp.where(ban, -jnp.inf, logits), -1).astype(jnp.int32)
    keys = jax.random.split(jax.random.fold_in(key, pos), logits.shape[0])  # one per sample
    scaled = filter_logits(logits, temperature, top_k, ban)
    return jax.vmap(jax.random.categorical)(keys, scaled).astype(jnp.int32)


def sample(
    logits_fn: LogitsFn,
    params: Any,
    prompt: jax.Array,
    *,
    num_tokens: int,
    max_len: int,
    key: jax.Array,
    temperature: float = 1.0,
    top_k: int = 0,
    banned: jax.Array | None = None,
) -> jax.Array:
    """prompt [B, P] int32 -> [B, P + num_tokens]; temperature 0 is greedy decoding.

    No cache: every new token runs the model over the last min(max_len, P + num_tokens) tokens.
    """
    b, p = prompt.shape
    total = p + num_tokens
    window = min(max_len, total)
    buf = jnp.zeros((b, total), jnp.int32).at[:, :p].set(prompt)

    def body(pos, buf):
        start = jnp.clip(pos - window, 0, total - window)
        ctx = jax.lax.dynamic_slice(buf, (0, start), (b, window))
        # Causal model: the logits at pos-1 only see the already-filled tokens before pos.
        logits = jax.lax.dynamic_index_in_dim(logits_fn(params, ctx), pos - 1 - start, 1, False)
        nxt = _choose(logits, pos, key, temperature, top_k, banned)
        return jax.lax.dynamic_update_index_in_dim(buf, nxt, pos, 1)

    return jax.lax.fori_loop(p, total, body, buf)


def sample_cached(
    model: transformer_lib.Transformer,
    params: Any,
    prompt: jax.Array,
    *,
    num_tokens: int,
    key: jax.Array,
    temperature: float = 1.0,
    top_k: int = 0,
    banned: jax.Array | None = None,
) -> jax.Array:
    """As `sample`, with a key/value cache: model is the causal Transformer, params its own
    (the encoder subtree). Needs P + num_tokens <= model.max_len."""
    b, p = prompt.shape
    total = p + num_tokens
    cache = transformer_lib.init_cache(model, b, total)
    decode = lambda tokens, cache, pos: model.apply(  # noqa: E731
        {"params": params}, tokens, cache, pos, method=model.decode
    )
    logits, cache = decode(prompt, cache, 0)  # prefill
    buf = jnp.zeros((b, total), jnp.int32).at[:, :p].set(prompt)

    def body(pos, carry):
        buf, cache, last = carry
        nxt = _choose(last, pos, key, temperature, top_k, banned)
        buf = jax.lax.dynamic_update_index_in_dim(buf, nxt, pos, 1)
        logits, cache = decode(nxt[:, None], cache, pos)
        return buf, cache, logits[:, 0]

    buf, _, last = jax.lax.fori_loop(p, total - 1, body, (buf, cache, logits[:, -1]))
    if num_tokens > 0:  # the last token needs no forward pass after it
        buf = buf.at[:, total - 1].set(_choose(last, total - 1, key, temperature, top_k, banned))
    return buf


def _model_config(config: ml_collections.ConfigDict, run: checkpoint.RunCheckpoint):
    """config with its model block taken from the run's (a generate job reads the model it
    loads, as predict / embed do): the checkpoint's model overrides config.model."""
    saved = run.config().get("model")
    if not saved:
        return config
    config = ml_collections.ConfigDict(config.to_dict())
    config.model = ml_collections.ConfigDict(saved)
    return config


def _restore_params(
    config: ml_collections.ConfigDict,
    workdir: epath.Path,
    method: Any,
    run: checkpoint.RunCheckpoint | None = None,
) -> Any:
    """The params of the run's newest checkpoint, replicated (no optimizer state is read).

    Read subtree by subtree (a causal LM's params are its encoder's alone): the one request a
    jaxssl run and a public checkpoint (GPT-2, which has nothing but the encoder) both answer."""
    own = run is None
    run = checkpoint.RunCheckpoint(workdir, key="--workdir") if own else run
    seq = int(config.dataset.seq_len)
    like = {"tokens": np.zeros((2, seq), np.int32), "attention_mask": np.ones((2, seq), np.int32)}
    params, _ = jax.eval_shape(method.init, jax.random.PRNGKey(0), like)
    replicated = sharding.replicated(sharding.make_mesh())
    params = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), params
    )
    try:
        restored = run.restore({f"params.{name}": tree for name, tree in params.items()})
        return {name: restored[f"params.{name}"] for name in params}, run.step
    finally:
        if own:
            run.close()


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Samples continuations of generate.prompt from a causal LM checkpoint."""
    workdir = epath.Path(workdir)
    g = config.get("generate") or ml_collections.ConfigDict()
    # The workdir's own run first (a run continued from init_from samples itself).
    source = None if checkpoint.has_checkpoint(workdir) else config.get("init_from") or None
    run_ckpt = checkpoint.RunCheckpoint(
        source or workdir, key="init_from" if source else "--workdir"
    )
    try:
        config = _model_config(config, run_ckpt) if source else config
        if config.method.name != "causal_lm" or not config.model.get("causal", False):
            raise ConfigError(
                "job=generate needs method.name=causal_lm and a causal decoder (model.causal)"
            )
        method = methods.get_method(config)
        params, step = _restore_params(config, workdir, method, run_ckpt)
    finally:
        run_ckpt.close()
    tok = text_data.tokenizer_of(config.dataset)
    ids = tok.encode(g.get("prompt", ""))
    ids = np.concatenate([[tok.eos_id], ids]).astype(np.int32)  # [EOS] = "a document starts"
    n = int(g.get("num_samples", 1))
    num_tokens = int(g.get("num_tokens", 200))
    prompt = jnp.asarray(np.tile(ids[None], (n, 1)))
    vocab, max_len = int(method.encoder.vocab_size), int(method.encoder.max_len)
    banned = np.ones(vocab, bool)  # ids past the tokenizer's and special ones, but [EOS]
    banned[: tok.vocab_size] = tok.is_special()[:vocab]
    banned[tok.eos_id] = False
    opts = dict(
        num_tokens=num_tokens,
        key=jax.random.PRNGKey(int(g.get("seed", 0))),
        temperature=float(g.get("temperature", 1.0)),
        top_k=int(g.get("top_k", 0)),
        banned=jnp.asarray(banned),
    )
    cached = len(ids) + num_tokens <= max_len
    if cached:
        fn = jax.jit(lambda p, x: sample_cached(method.encoder, p["encoder"], x, **opts))
    else:
        say(
            f"prompt + num_tokens = {len(ids) + num_tokens} > model.max_len={max_len}: "
            "sliding-window decoding without a cache"
        )
        fn = jax.jit(lambda p, x: sample(method.logits, p, x, max_len=max_len, **opts))
    out = np.asarray(fn(params, prompt))
    texts = [tok.decode(row[len(ids) :]) for row in out]
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        sep = "\n" + "=" * 40 + "\n"
        body = sep.join(g.get("prompt", "") + t for t in texts)
        (workdir / "samples.txt").write_text(body + "\n")
        print(body)
    say(f"wrote {workdir / 'samples.txt'}")
    return {
        "step": int(step),
        "samples": texts,
        "prompt": g.get("prompt", ""),
        "kv_cache": cached,
    }
