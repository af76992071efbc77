"""Cost of fault tolerance: step time with async checkpoints every K steps vs none, and resume
latency (process start -> first new step after a kill -9), on configs/simclr_digits.py.

  python benchmarks/checkpoint_cost.py [--steps 60] [--every 10] [--repeats 3]

Prints per-step times and, last, the ratio (checkpointed / plain step time).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _config(data_dir: str, steps: int, every: int):
    from tests.helpers import load_config

    c = load_config("simclr_digits")
    c.dataset.data_dir = data_dir
    c.total_steps, c.log_every, c.checkpoint_every = steps, steps, every
    c.eval.enabled = False
    return c


def _setup(config):
    """Mesh, compiled step and initial state, built once and shared by every timed run."""
    import jax

    from jaxssl import methods
    from jaxssl import sharding as mesh_lib
    from jaxssl.data import pipeline, sources
    from jaxssl.train import optim, skeleton
    from jaxssl.train import step as step_lib

    mesh = mesh_lib.make_mesh()
    method = methods.get_method(config)
    source = sources.get_source(config.dataset, "train")
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    state0 = step_lib.init_state(method, tx, 0, skeleton.sample_batch(source), mesh)
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state0, mesh)
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=0)
    warm, _ = step(jax.tree.map(jax.numpy.copy, state0), mesh_lib.to_global_batch(next(it), mesh))
    jax.block_until_ready(warm)  # compile outside any timing
    return mesh, source, step, state0


def _loop_time(config, setup, workdir: Path) -> float:
    """Seconds per step of train_loop, checkpointing (async) as config says."""
    import jax

    from jaxssl.data import pipeline
    from jaxssl.train.checkpoint import Checkpointer
    from jaxssl.train.loop import train_loop
    from jaxssl.train.writers import MetricWriter

    mesh, source, step, state0 = setup
    state = jax.block_until_ready(jax.tree.map(jax.numpy.copy, state0))
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=0)
    ckpt = Checkpointer(workdir / "checkpoints", keep=3, async_save=True)
    writer = MetricWriter(workdir, config)
    start = time.perf_counter()
    state, _ = train_loop(state, step, it, config=config, mesh=mesh, ckpt=ckpt, writer=writer)
    jax.block_until_ready(state)  # train_loop also waits for the last save
    elapsed = time.perf_counter() - start
    writer.close()
    ckpt.close()
    return elapsed / config.total_steps


def _resume_latency(data_dir: str, tmp: Path) -> tuple[float, float]:
    """(fresh start -> first step, restart after kill -9 -> first new step) in seconds."""
    workdir = tmp / "resume"
    cmd = [
        sys.executable,
        "-m",
        "jaxssl.main",
        f"--config={ROOT}/configs/simclr_digits.py",
        f"--workdir={workdir}",
        f"--config.dataset.data_dir={data_dir}",
        "--config.total_steps=100000",
        "--config.log_every=1",
        "--config.checkpoint_every=5",
        "--config.eval.enabled=False",
    ]
    metrics = workdir / "metrics.jsonl"

    def wait_step(proc, after: int) -> float:
        while True:
            assert proc.poll() is None, "run died"
            if metrics.exists():
                lines = metrics.read_text().splitlines()
                if lines and json.loads(lines[-1])["step"] > after:
                    return time.perf_counter()
            time.sleep(0.01)

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fresh = wait_step(proc, 0) - t0
    ckpts = workdir / "checkpoints"
    while not (
        ckpts.exists() and any(p.name.isdigit() and int(p.name) >= 10 for p in ckpts.iterdir())
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = max(json.loads(x)["step"] for x in metrics.read_text().splitlines())
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resumed = wait_step(proc, last) - t0  # a record past the last one written before the kill
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    return fresh, resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import jax

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = str(tmp / "data")
        times = {"none": [], "async": []}
        setup = _setup(_config(data_dir, args.steps, args.every))
        for r in range(args.repeats):  # interleaved so machine-load drift hits both alike
            for kind, every in (("none", 10**9), ("async", args.every)):
                config = _config(data_dir, args.steps, every)
                times[kind].append(_loop_time(config, setup, tmp / f"{kind}{r}"))
        plain, ckpt = min(times["none"]), min(times["async"])
        fresh, resumed = _resume_latency(data_dir, tmp)
    print(
        f"devices: {jax.device_count()} x {jax.devices()[0].platform}; batch 256, "
        f"cnn_small (32,64,128), {args.steps} steps, best of {args.repeats}"
    )
    print(f"step time, no checkpoints:              {plain * 1e3:8.2f} ms")
    print(f"step time, async checkpoint every {args.every:>3}: {ckpt * 1e3:8.2f} ms")
    print(f"start -> first step (fresh workdir):    {fresh:8.2f} s")
    print(f"start -> first new step after kill -9:  {resumed:8.2f} s")
    print(f"checkpointed / plain step time: {ckpt / plain:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
