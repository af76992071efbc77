"""Train-step throughput of configs/causal_lm_pydoc.py (tokens/s), and the cost of remat.

  python benchmarks/causal_lm_pydoc.py [--steps 100]
  python benchmarks/causal_lm_pydoc.py --steps 2 --eval-batches 256,64,32 \
      --text ../shared/data/tinyshakespeare/input.txt
Times the jitted, donated train step alone (compile excluded, real pydoc batches prefetched to
host memory). Last line: step-time ratio remat=True / remat=False. --eval-batches also times
the job's held-out evaluation (evaluate_method: input, forward and sums) at each
eval.batch_size, after one untimed pass each, and checks they agree on the loss.
"""

import argparse
import pathlib
import time

import jax
import numpy as np

from jaxssl import api
from jaxssl import sharding as mesh_lib
from jaxssl.data import pipeline, sources
from jaxssl.evaluate import protocol
from jaxssl.train import precision, pretrain, skeleton

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(**overrides):
    """configs/causal_lm_pydoc.py through jaxssl's checked loader, remat and precision applied
    to the model block as a run applies them."""
    path = str(ROOT / "configs" / "causal_lm_pydoc.py")
    return precision.with_precision(api.load_config(path, overrides))


def job_state(config):
    """(mesh, the pre-training job's parts, its fresh state): built as a run builds them."""
    mesh = mesh_lib.make_mesh()
    parts = pretrain.build(config, mesh)
    return mesh, parts, skeleton.init_state(parts, config, mesh)


def seconds_per_step(config, batches) -> float:
    mesh, parts, state = job_state(config)
    step = skeleton.jit_step(parts, config, state, mesh)
    glob = [mesh_lib.to_global_batch(b, mesh) for b in batches]
    state, m = step(state, glob[0])  # compile
    jax.block_until_ready(m)
    start = time.perf_counter()
    for b in glob[1:]:
        state, m = step(state, b)
    jax.block_until_ready(m)
    return (time.perf_counter() - start) / (len(glob) - 1)


def eval_seconds(config, sizes: list[int], repeats: int = 3) -> dict[int, float]:
    """Median seconds of the held-out evaluation per eval.batch_size (random-init params)."""
    mesh, parts, state = job_state(config)
    method = parts.method
    times, losses = {n: [] for n in sizes}, {}
    for r in range(repeats + 1):  # round 0 compiles: untimed
        for n in sizes:
            config.eval.batch_size = n
            start = time.perf_counter()
            out = protocol.evaluate_method(method, state.params, state.model_state, config, mesh)
            if r:
                times[n].append(time.perf_counter() - start)
            losses[n] = out["eval_loss"]
    first = losses[sizes[0]]
    assert all(abs(v - first) < 1e-5 * abs(first) for v in losses.values()), losses
    return {n: float(np.median(t)) for n, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-batches", default="", help="e.g. 256,32: time the evaluation")
    parser.add_argument("--text", default="", help="a text file instead of the pydoc corpus")
    args = parser.parse_args()
    text = {"dataset.name": f"text:{args.text}"} if args.text else {}
    config = load_config(**text)
    source = sources.get_source(config.dataset, "train")
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=0)
    batches = [next(it) for _ in range(args.steps + 1)]
    tokens = config.batch_size * (config.dataset.seq_len - 1)  # predicted tokens per step
    times = {}
    for remat in (False, True):
        times[remat] = seconds_per_step(load_config(**text, remat=remat), batches)
        ms, rate = times[remat] * 1e3, tokens / times[remat]
        print(f"remat={remat}: {ms:.2f} ms/step, {rate:,.0f} tokens/s")
    print(f"devices={jax.device_count()} ({jax.devices()[0].platform}), batch {config.batch_size}")
    if args.eval_batches:
        sizes = [int(n) for n in args.eval_batches.split(",")]
        seconds = eval_seconds(config, sizes)
        for n in sizes:
            print(f"held-out evaluation, eval.batch_size={n}: {seconds[n]:.2f} s")
        print(f"eval time {sizes[0]} / {sizes[-1]}: {seconds[sizes[0]] / seconds[sizes[-1]]:.2f}")
    print(f"remat/plain step-time ratio: {times[True] / times[False]:.3f}")


if __name__ == "__main__":
    main()
