"""Train-step throughput of configs/causal_lm_pydoc.py (tokens/s), and the cost of remat.

  python benchmarks/causal_lm_pydoc.py [--steps 100]
Times the jitted, donated train step alone (compile excluded, real pydoc batches prefetched to
host memory). Last line: step-time ratio remat=True / remat=False.
"""

import argparse
import importlib.util
import pathlib
import time

import jax

from jaxssl import methods
from jaxssl import sharding as mesh_lib
from jaxssl.data import pipeline, sources
from jaxssl.train import optim
from jaxssl.train import step as step_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config():
    spec = importlib.util.spec_from_file_location("c", ROOT / "configs" / "causal_lm_pydoc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def seconds_per_step(config, batches) -> float:
    mesh = mesh_lib.make_mesh()
    method = methods.get_method(config)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, batches[0], mesh)
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, mesh)
    glob = [mesh_lib.to_global_batch(b, mesh) for b in batches]
    state, m = step(state, glob[0])  # compile
    jax.block_until_ready(m)
    start = time.perf_counter()
    for b in glob[1:]:
        state, m = step(state, b)
    jax.block_until_ready(m)
    return (time.perf_counter() - start) / (len(glob) - 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    config = load_config()
    source = sources.get_source(config.dataset, "train")
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=0)
    batches = [next(it) for _ in range(args.steps + 1)]
    tokens = config.batch_size * (config.dataset.seq_len - 1)  # predicted tokens per step
    times = {}
    for remat in (False, True):
        config.model.remat = remat
        times[remat] = seconds_per_step(config, batches)
        ms, rate = times[remat] * 1e3, tokens / times[remat]
        print(f"remat={remat}: {ms:.2f} ms/step, {rate:,.0f} tokens/s")
    print(f"devices={jax.device_count()} ({jax.devices()[0].platform}), batch {config.batch_size}")
    print(f"remat/plain step-time ratio: {times[True] / times[False]:.3f}")


if __name__ == "__main__":
    main()
