"""Sampling from a causal LM (greedy, temperature, top-k) and the `generate` job.

Job: python -m jaxssl.main --config CONFIG --workdir W --config.job=generate
reads W's newest checkpoint, samples generate.num_samples continuations of generate.prompt and
writes them to W/samples.txt. No KV cache: each new token re-reads the last max_len tokens,
which is cheap at the context lengths trained here and keeps one code path with training.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from jaxssl import methods, sharding
from jaxssl.data import text as text_data
from jaxssl.data import tokenizers
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
    """prompt [B, P] int32 -> [B, P + num_tokens]; temperature 0 is greedy decoding."""
    b, p = prompt.shape
    total = p + num_tokens
    window = min(max_len, total)
    buf = jnp.zeros((b, total), jnp.int32).at[:, :p].set(prompt)
    vocab_banned = banned

    def body(pos, buf):
        start = jnp.clip(pos - window, 0, total - window)
        ctx = jax.lax.dynamic_slice(buf, (0, start), (b, window))
        # Causal model: the logits at pos-1 only see the already-filled tokens before pos.
        logits = jax.lax.dynamic_index_in_dim(logits_fn(params, ctx), pos - 1 - start, 1, False)
        ban = jnp.zeros(logits.shape[-1], bool) if vocab_banned is None else vocab_banned
        if temperature == 0:
            nxt = jnp.argmax(jnp.where(ban, -jnp.inf, logits), -1)
        else:
            keys = jax.random.split(jax.random.fold_in(key, pos), b)  # one key per sample
            scaled = filter_logits(logits, temperature, top_k, ban)
            nxt = jax.vmap(jax.random.categorical)(keys, scaled)
        return jax.lax.dynamic_update_index_in_dim(buf, nxt.astype(jnp.int32), pos, 1)

    return jax.lax.fori_loop(p, total, body, buf)


def _restore_params(config: ml_collections.ConfigDict, workdir: epath.Path, method: Any) -> Any:
    """The params of workdir's newest checkpoint, replicated (no optimizer state is read)."""
    run = checkpoint.RunCheckpoint(workdir, key="--workdir")
    seq = int(config.dataset.seq_len)
    like = {"tokens": np.zeros((2, seq), np.int32), "attention_mask": np.ones((2, seq), np.int32)}
    params, _ = jax.eval_shape(method.init, jax.random.PRNGKey(0), like)
    replicated = sharding.replicated(sharding.make_mesh())
    params = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), params
    )
    try:
        return run.restore({"params": params})["params"], run.step
    finally:
        run.close()


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Samples continuations of generate.prompt from workdir's newest checkpoint."""
    workdir = epath.Path(workdir)
    if config.method.name != "causal_lm":
        raise ValueError("job=generate needs method.name='causal_lm' (a decoder checkpoint)")
    g = config.get("generate") or ml_collections.ConfigDict()
    method = methods.get_method(config)
    params, step = _restore_params(config, workdir, method)
    tok = text_data.tokenizer_of(config.dataset)
    ids = tok.encode(g.get("prompt", ""))
    ids = np.concatenate([[tok.eos_id], ids]).astype(np.int32)  # [EOS] = "a document starts"
    n = int(g.get("num_samples", 1))
    prompt = jnp.asarray(np.tile(ids[None], (n, 1)))
    banned = np.ones(config.model.vocab_size, bool)
    banned[tokenizers.NUM_SPECIAL : tok.vocab_size] = False
    banned[tok.eos_id] = False
    fn = jax.jit(
        lambda params, prompt, key: sample(
            method.logits,
            params,
            prompt,
            num_tokens=int(g.get("num_tokens", 200)),
            max_len=int(config.model.max_len),
            key=key,
            temperature=float(g.get("temperature", 1.0)),
            top_k=int(g.get("top_k", 0)),
            banned=jnp.asarray(banned),
        )
    )
    out = np.asarray(fn(params, prompt, jax.random.PRNGKey(int(g.get("seed", 0)))))
    texts = [tok.decode(row[len(ids) :]) for row in out]
    if jax.process_index() == 0:
        sep = "\n" + "=" * 40 + "\n"
        body = sep.join(g.get("prompt", "") + t for t in texts)
        (workdir / "samples.txt").write_text(body + "\n")
        print(body)
    say(f"wrote {workdir / 'samples.txt'}")
    return {"step": int(step), "samples": texts, "prompt": g.get("prompt", "")}
