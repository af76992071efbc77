"""Causal-LM decoding speed: tokens/s with the key/value cache vs without, and their ratio.

  python benchmarks/generate_kv_cache.py [--new-tokens 256] [--batch 1] [--repeats 3]
The model is configs/causal_lm_pydoc.py's decoder (transformer_tiny: width 128, 4 layers, 4
heads, bytes) with max_len = prompt + new tokens, so neither path slides its window; random
weights (speed does not depend on them), greedy. Both are one jitted fori_loop (compile
excluded); uncached re-runs the model over the whole window for every new token, cached
prefills once then runs one token per step. Checks both produce the same tokens; last line:
the ratio cached / uncached tokens per second.
"""

import argparse
import importlib.util
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxssl import generate
from jaxssl.methods.base import build_encoder

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config():
    spec = importlib.util.spec_from_file_location("c", ROOT / "configs" / "causal_lm_pydoc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def best_seconds(fn, params, prompt, repeats: int) -> tuple[float, np.ndarray]:
    out = jax.block_until_ready(fn(params, prompt))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(params, prompt))
        times.append(time.perf_counter() - start)
    return min(times), np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = load_config()
    total = args.prompt + args.new_tokens
    config.model.max_len = total
    model = build_encoder(config.model)
    prompt = jnp.asarray(
        np.random.default_rng(0).integers(6, 262, (args.batch, args.prompt)), jnp.int32
    )
    params = jax.jit(model.init)(jax.random.PRNGKey(0), prompt)["params"]

    def logits_fn(p, tokens):
        _, feats = model.apply({"params": p}, tokens)
        return model.apply({"params": p}, feats["tokens"], method=model.logits)

    opts = dict(num_tokens=args.new_tokens, key=jax.random.PRNGKey(0), temperature=0.0)
    uncached = jax.jit(lambda p, x: generate.sample(logits_fn, p, x, max_len=total, **opts))
    cached = jax.jit(lambda p, x: generate.sample_cached(model, p, x, **opts))
    t_uncached, a = best_seconds(uncached, params, prompt, args.repeats)
    t_cached, b = best_seconds(cached, params, prompt, args.repeats)
    assert (a == b).all(), "cached and uncached decoding differ"
    n = args.batch * args.new_tokens
    print(f"device: {jax.devices()[0].device_kind}, batch {args.batch}, prompt {args.prompt}")
    print(f"uncached: {n / t_uncached:9.1f} tokens/s ({t_uncached:.3f} s)")
    print(f"cached:   {n / t_cached:9.1f} tokens/s ({t_cached:.3f} s); same tokens: True")
    print(f"ratio cached/uncached: {t_uncached / t_cached:.1f}")


if __name__ == "__main__":
    main()
