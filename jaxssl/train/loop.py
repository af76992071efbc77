"""The step loop shared by pre-training and fine-tuning: steps, logs, checkpoints."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from jaxssl.train import mesh as mesh_lib
from jaxssl.train.checkpoint import Checkpointer
from jaxssl.train.writers import MetricWriter


class NonFiniteError(RuntimeError):
    """Loss or gradients became NaN/inf; the last good checkpoint is kept."""


def _check_finite(metrics: dict[str, Any], step: int, ckpt: Checkpointer) -> None:
    bad = {k: float(v) for k, v in metrics.items() if not np.all(np.isfinite(v))}
    if bad:
        ckpt.wait()
        raise NonFiniteError(
            f"non-finite metrics {bad} at step {step}; the last good checkpoint "
            f"(step {ckpt.latest_step()}) is kept: lower optimizer.learning_rate "
            "or set optimizer.grad_clip_norm"
        )


def train_loop(
    state: Any,
    train_step: Callable[[Any, dict[str, jax.Array]], tuple[Any, dict[str, jax.Array]]],
    data_iter: Iterator[dict[str, np.ndarray]],
    *,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    ckpt: Checkpointer,
    writer: MetricWriter,
    desc: str = "train",
) -> tuple[Any, float]:
    """Runs steps from state.step to config.total_steps; returns (state, train seconds).

    Metrics are fetched only every log_every steps so the host keeps dispatching
    ahead of the device; checkpoints are written every checkpoint_every steps and
    at the end, with the data iterator's position.
    """
    first_step = int(state.step)
    bar = tqdm(
        total=config.total_steps,
        initial=first_step,
        desc=desc,
        unit="step",
        disable=jax.process_index() != 0,
        dynamic_ncols=True,
    )
    start = last_time = time.time()
    last_step = first_step
    for step in range(first_step, config.total_steps):
        batch = mesh_lib.to_global_batch(next(data_iter), mesh)
        state, metrics = train_step(state, batch)
        done = step + 1
        if done % config.log_every == 0 or done == config.total_steps:
            metrics = jax.device_get(metrics)
            _check_finite(metrics, done, ckpt)
            now = time.time()
            metrics["examples_per_s"] = (done - last_step) * config.batch_size / (now - last_time)
            last_time, last_step = now, done
            writer.write(done, metrics)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", ex_s=f"{metrics['examples_per_s']:.0f}")
        bar.update(1)
        if done % config.checkpoint_every == 0 or done == config.total_steps:
            ckpt.save(done, state, data_iter)
    bar.close()
    ckpt.wait()
    return state, time.time() - start
