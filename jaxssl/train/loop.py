"""The step loop shared by pre-training and fine-tuning: steps, logs, checkpoints, faults."""

import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh
from tqdm import tqdm

from jaxssl import sharding as mesh_lib
from jaxssl.train import heap
from jaxssl.train.checkpoint import Checkpointer
from jaxssl.train.signals import Preempted, PreemptionGuard
from jaxssl.train.writers import MetricWriter

# Dispatched steps the host lets run ahead of the last finished one: 1 keeps the next step
# queued on the device while the host prepares the one after (deeper queues only hide time).
IN_FLIGHT = 1


class NonFiniteError(RuntimeError):
    """Loss or gradients became NaN/inf; the last good checkpoint is kept."""


def _step_finite(metrics: dict[str, Any]) -> Any:
    """A device scalar: the step's own finite flag, else whether its loss is finite."""
    if "finite" in metrics:
        return metrics["finite"]
    return jax.numpy.isfinite(metrics["loss"]).astype(np.float32)


def _nonfinite_steps(pending: list[tuple[int, Any]]) -> list[int]:
    """Steps among `pending` whose finite flag is 0 (one host transfer for all of them)."""
    if not pending:
        return []
    flags = jax.device_get([flag for _, flag in pending])
    return [step for (step, _), ok in zip(pending, flags, strict=True) if not ok]


def _raise_nonfinite(step: int, metrics: dict[str, Any] | None, ckpt: Checkpointer) -> None:
    ckpt.wait()
    shown = ""
    if metrics is not None:
        values = jax.device_get(metrics)
        shown = ", ".join(f"{k}={float(v):.4g}" for k, v in sorted(values.items()))
        shown = f" (metrics at the last logged step: {shown})"
    raise NonFiniteError(
        f"non-finite loss or gradients at step {step}{shown}; training stopped and the last "
        f"good checkpoint (step {ckpt.latest_step()}) is kept: lower optimizer.learning_rate, "
        "set optimizer.grad_clip_norm, or --config.skip_nonfinite=True to skip such steps"
    )


def _bar_postfix(bar: tqdm, metrics: dict[str, float], rate: float) -> None:
    bar.set_postfix(loss=f"{metrics['loss']:.4f}", ex_s=f"{rate:.0f}", refresh=False)


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
    guard: PreemptionGuard | None = None,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
) -> tuple[Any, float]:
    """Runs steps from state.step to config.total_steps; returns (state, train seconds).

    The progress bar counts finished steps, not dispatched ones: after dispatching step N the
    host waits for step N - IN_FLIGHT's loss (a scalar), so the device always has the next step
    queued while the bar's rate and ETA follow the device, and a log step costs no more than any
    other. Compilation (the first step) is left out of the bar's rate. Metrics are fetched every
    log_every steps, with examples_per_s and data_wait_fraction (the share of the wall time
    since the last log the host spent waiting for the next batch and putting it on the devices:
    near 0 is compute-bound, near 1 input-bound); checkpoints are written every checkpoint_every
    steps and at the end, with the data iterator's position. Each step's finite flag stays on
    device until the next log or checkpoint, where a non-finite step raises NonFiniteError
    naming it (or, with config.skip_nonfinite, is counted as skipped) before anything is saved.
    With config.eval_every > 0, `evaluate(state)` runs every eval_every steps before the next
    step consumes (donates) the state, except at the last step (the job evaluates then); its
    scalars are logged under "eval/". SIGTERM/SIGINT finish the current step, checkpoint it, and
    raise Preempted.
    """
    skip = config.get("skip_nonfinite", False)
    eval_every = int(config.get("eval_every", 0) or 0) if evaluate is not None else 0
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
    data_wait = 0.0  # host seconds spent waiting for the input pipeline since the last log
    pending: list[tuple[int, Any]] = []
    in_flight: collections.deque[Any] = collections.deque()
    compiled = False
    skipped = 0
    saved_at = ckpt.latest_step()

    def finish(keep: int) -> None:
        """Waits until at most `keep` dispatched steps are unfinished; the bar counts the rest."""
        nonlocal compiled
        while len(in_flight) > keep:
            jax.block_until_ready(in_flight.popleft())
            if not compiled:  # the first step included compilation: not part of the rate
                compiled = True
                heap.settle()  # the compiler's garbage out of the steps' way
                bar.unpause()
            bar.update(1)

    # The bar (a context manager) ends its line however the loop ends: done, a stop, an error.
    with guard or PreemptionGuard() as guard, bar:
        if first_step < config.total_steps:
            bar.set_postfix_str("compiling the train step", refresh=True)
        for step in range(first_step, config.total_steps):
            fetch = time.perf_counter()
            batch = mesh_lib.to_global_batch(next(data_iter), mesh)
            data_wait += time.perf_counter() - fetch
            state, metrics = train_step(state, batch)
            done = step + 1
            in_flight.append(metrics["loss"])
            finish(IN_FLIGHT)
            pending.append((done, _step_finite(metrics)))
            log = done % config.log_every == 0 or done == config.total_steps
            save = done % config.checkpoint_every == 0 or done == config.total_steps
            stop = guard.should_stop(done)
            if log or save or stop:
                bad = _nonfinite_steps(pending)
                pending.clear()
                if bad and not skip:
                    _raise_nonfinite(bad[0], metrics if log else None, ckpt)
                skipped += len(bad)
            if log:
                metrics = jax.device_get(metrics)
                finish(0)
                now = time.time()
                rate = (done - last_step) * config.batch_size / (now - last_time)
                metrics["examples_per_s"] = rate
                # Input-bound when high: the device had no next batch while the host waited.
                metrics["data_wait_fraction"] = min(data_wait / max(now - last_time, 1e-9), 1.0)
                data_wait = 0.0
                if skip:
                    metrics["skipped_nonfinite"] = skipped
                last_time, last_step = now, done
                writer.write(done, metrics)
                _bar_postfix(bar, metrics, rate)
            if (save or stop) and saved_at != done:
                ckpt.save(done, state, data_iter, force=stop)
                saved_at = done
            if stop and done < config.total_steps:
                finish(0)
                bar.close()
                ckpt.wait()
                raise Preempted(done, guard.signal_name or "SIGTERM", str(ckpt.directory))
            if eval_every and done % eval_every == 0 and done < config.total_steps:
                finish(0)
                bar.set_postfix_str(f"evaluating at step {done}", refresh=True)
                eval_start = time.time()
                writer.write(done, evaluate(state), prefix="eval/")
                heap.settle()  # what compiling the evaluation left
                bar.unpause()  # the evaluation's time is not step time
                last_time += time.time() - eval_start
        finish(0)
    ckpt.wait()
    return state, time.time() - start
