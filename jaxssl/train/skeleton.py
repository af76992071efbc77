"""The one job skeleton every training job runs through (pre-training, fine-tuning, ...).

A job supplies a `build(config, mesh) -> JobParts` (its method, data, optimizer, evaluation);
the skeleton gives it, identically for every job: the preemption guard from the first line,
the workdir and config-conflict check, the (data, fsdp) mesh, precision and remat, the state
created on the mesh, restore of the newest readable checkpoint (damaged ones set aside), the
generic jitted step (with a trainable partition and skip_nonfinite), the loop, writers and
checkpointer closed on any exit, the job's evaluation every eval_every steps and at the end
(logged under "eval/" and plotted), and the summary with params_fingerprint.
"""

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from etils import epath
from jax.sharding import Mesh

from jaxssl import sharding
from jaxssl.data import pipeline, sources
from jaxssl.methods.base import Method
from jaxssl.train import plots, precision, resume
from jaxssl.train import step as step_lib
from jaxssl.train.checkpoint import Checkpointer
from jaxssl.train.fingerprint import tree_fingerprint
from jaxssl.train.loop import train_loop
from jaxssl.train.signals import PreemptionGuard
from jaxssl.train.state import TrainState
from jaxssl.train.writers import MetricWriter, numbers, read_metrics


@dataclasses.dataclass
class JobParts:
    """What a training job hands the skeleton."""

    method: Method  # init / loss / after_update, run by the generic step
    train_source: Any  # random-access examples of the training split
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    evaluate: Callable[[TrainState, Mesh, epath.Path], dict[str, Any]]
    trainable: Any | None = None  # pytree of bools like params; None: everything trains
    init_from: Callable[[TrainState], TrainState] | None = None  # fresh runs only
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    banner: Callable[[TrainState], str] | None = None  # printed once the state exists
    desc: str = "train"  # progress-bar label


def sample_batch(source: Any, n: int = 2) -> dict[str, np.ndarray]:
    """A small batch with the dataset's shapes and dtypes, for init only."""
    examples = [source[i] for i in range(min(n, len(source)))]
    return {k: np.stack([np.asarray(e[k]) for e in examples]) for k in examples[0]}


def write_json(path: epath.Path, payload: dict) -> None:
    """Writes payload as pretty JSON from process 0 only."""
    if jax.process_index() == 0:
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def say(message: str) -> None:
    """One line on stdout from process 0."""
    if jax.process_index() == 0:
        print(f"jaxssl: {message}", flush=True)


def init_state(parts: JobParts, config: ml_collections.ConfigDict, mesh: Mesh) -> TrainState:
    """The job's fresh state, created on the mesh (leaves split over `fsdp` by shape)."""
    return step_lib.init_state(
        parts.method,
        parts.tx,
        config.seed,
        sample_batch(parts.train_source),
        mesh,
        fsdp_min_size=config.get("mesh", {}).get("fsdp_min_size", 2**16),
    )


def jit_step(
    parts: JobParts, config: ml_collections.ConfigDict, state: TrainState, mesh: Mesh
) -> step_lib.StepFn:
    """The generic step of the job's method, partition and skip_nonfinite, jitted on the mesh."""
    return step_lib.jit_train_step(
        step_lib.make_train_step(
            parts.method,
            parts.tx,
            parts.schedule,
            skip_nonfinite=config.get("skip_nonfinite", False),
            trainable=parts.trainable,
        ),
        state,
        mesh,
    )


def evaluation(
    parts: JobParts, config: ml_collections.ConfigDict, mesh: Mesh, workdir: epath.Path
) -> Callable[[TrainState], dict[str, Any]]:
    """parts.evaluate on a state; an image dataset without labels skips it (kNN needs labels)."""
    info = sources.dataset_info(config.dataset)
    if info.image_shape is not None and info.num_classes is None:
        say(
            f"no evaluation: {config.dataset.name} has no labels (no class folders), so kNN and"
            " the probes cannot run; train/CLASS/ and val/CLASS/ folders give them"
        )
        return lambda state: {}
    return lambda state: parts.evaluate(state, mesh, workdir)


def run(
    config: ml_collections.ConfigDict,
    workdir: epath.PathLike,
    build: Callable[[ml_collections.ConfigDict, Mesh], JobParts],
) -> dict[str, Any]:
    """Builds the job's parts, trains from the newest checkpoint, evaluates; returns the summary."""
    with PreemptionGuard() as guard:  # from the start: a SIGTERM during compile is honoured too
        return _run(config, workdir, build, guard)


def _run(config, workdir, build, guard: PreemptionGuard) -> dict[str, Any]:
    start_time = time.time()
    # Before anything is built: a conflicting checkpoint is refused (or left alone).
    workdir = resume.resolve_workdir(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh_cfg = config.get("mesh", ml_collections.ConfigDict())
    mesh = sharding.make_mesh(fsdp=mesh_cfg.get("fsdp", 1))
    parts = build(precision.with_precision(config), mesh)

    data_iter = pipeline.train_iterator(
        parts.train_source,
        global_batch_size=config.batch_size,
        seed=config.seed,
        num_workers=config.dataset.get("num_workers", 0),
    )
    state = init_state(parts, config, mesh)
    ckpt = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
    writer = None
    try:
        state, latest = ckpt.restore_latest(state, data_iter)
        if latest is not None:
            say(f"resuming from step {latest} ({ckpt.directory})")
        else:
            if parts.init_from is not None:
                state = parts.init_from(state)
            write_json(workdir / "config.json", config.to_dict())
        if parts.banner is not None:
            say(parts.banner(state))
        train_step = jit_step(parts, config, state, mesh)
        writer = MetricWriter(workdir, config)
        evaluate = evaluation(parts, config, mesh, workdir)
        state, train_time = train_loop(
            state,
            train_step,
            data_iter,
            config=config,
            mesh=mesh,
            ckpt=ckpt,
            writer=writer,
            desc=parts.desc,
            guard=guard,
            evaluate=lambda state: numbers(evaluate(state)),
        )
        summary: dict[str, Any] = {
            "job": config.get("job", "pretrain"),
            "steps": int(state.step),
            "model": config.model.name,
            "dataset": config.dataset.name,
            "batch_size": config.batch_size,
            "devices": jax.device_count(),
            "processes": jax.process_count(),
            "train_wall_time_s": train_time,
            "params_total": int(sum(x.size for x in jax.tree.leaves(state.params))),
            "params_encoder": int(sum(x.size for x in jax.tree.leaves(state.params["encoder"]))),
            "params_fingerprint": tree_fingerprint(state.params),
            "workdir": str(workdir),
            **parts.summary,
        }
        losses = [r["loss"] for r in read_metrics(workdir) if "loss" in r]
        if losses:
            summary["final_loss"] = losses[-1]
        eval_start = time.time()
        results = evaluate(state)
        writer.write(int(state.step), results, prefix="eval/")  # TensorBoard / W&B too
        summary.update(results)
        summary["eval_wall_time_s"] = time.time() - eval_start
        summary["wall_time_s"] = time.time() - start_time
        write_json(workdir / "summary.json", summary)
        if jax.process_index() == 0:
            plots.plot_run(workdir, plots.run_title(config))
        return summary
    finally:
        if writer is not None:
            writer.close()
        ckpt.close()
        close = getattr(data_iter, "close", None)  # grain worker processes, when any
        if close is not None:
            close()
