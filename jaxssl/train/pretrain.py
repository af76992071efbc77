"""The pre-training job: data -> jitted steps on the mesh -> checkpoints -> evaluation."""

import json
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from jaxssl import methods
from jaxssl.data import pipeline, sources
from jaxssl.train import mesh as mesh_lib
from jaxssl.train import optim, plots, precision, resume
from jaxssl.train import step as step_lib
from jaxssl.train.checkpoint import Checkpointer
from jaxssl.train.fingerprint import tree_fingerprint
from jaxssl.train.loop import train_loop
from jaxssl.train.signals import PreemptionGuard
from jaxssl.train.writers import MetricWriter, read_metrics


def sample_batch(source: Any, n: int = 2) -> dict[str, np.ndarray]:
    """A small batch with the dataset's shapes and dtypes, for init only."""
    examples = [source[i] for i in range(n)]
    return {k: np.stack([np.asarray(e[k]) for e in examples]) for k in examples[0]}


def write_json(path: epath.Path, payload: dict) -> None:
    """Writes payload as pretty JSON from process 0 only."""
    if jax.process_index() == 0:
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Pre-trains config.method, then evaluates the encoder; returns the summary."""
    with PreemptionGuard() as guard:  # from the start: a SIGTERM during compile is honoured too
        return _run(config, workdir, guard)


def _run(config: ml_collections.ConfigDict, workdir: str, guard: PreemptionGuard) -> dict:
    start_time = time.time()
    # Before anything is built: a conflicting checkpoint is refused (or left alone).
    workdir = resume.resolve_workdir(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_config = precision.with_precision(config)

    # --- Mesh, method, data ------------------------------------------------------
    mesh = mesh_lib.make_mesh(fsdp=config.get("mesh", {}).get("fsdp", 1))
    method = methods.get_method(model_config)
    train_source = sources.get_source(config.dataset, config.dataset.train_split)
    data_iter = pipeline.train_iterator(
        train_source, global_batch_size=config.batch_size, seed=config.seed
    )

    # --- State, optimizer, checkpoint --------------------------------------------
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(
        method,
        tx,
        config.seed,
        sample_batch(train_source),
        mesh,
        fsdp_min_size=config.get("mesh", {}).get("fsdp_min_size", 2**16),
    )
    ckpt = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
    state, latest = ckpt.restore_latest(state, data_iter)
    if latest is not None:
        if jax.process_index() == 0:
            print(f"jaxssl: resuming from step {latest} ({ckpt.directory})", flush=True)
    else:
        write_json(workdir / "config.json", config.to_dict())
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    encoder_params = sum(x.size for x in jax.tree.leaves(state.params["encoder"]))

    # --- Train loop -------------------------------------------------------------
    train_step = step_lib.jit_train_step(
        step_lib.make_train_step(
            method, tx, schedule, skip_nonfinite=config.get("skip_nonfinite", False)
        ),
        state,
        mesh,
    )
    writer = MetricWriter(workdir, config)
    try:
        state, train_time = train_loop(
            state,
            train_step,
            data_iter,
            config=config,
            mesh=mesh,
            ckpt=ckpt,
            writer=writer,
            desc="pretrain",
            guard=guard,
        )
    except BaseException:
        writer.close()
        ckpt.close()
        raise

    # --- Evaluation and summary -------------------------------------------------
    summary: dict[str, Any] = {
        "steps": int(state.step),
        "method": config.method.name,
        "model": config.model.name,
        "dataset": config.dataset.name,
        "batch_size": config.batch_size,
        "devices": jax.device_count(),
        "train_wall_time_s": train_time,
        "params_total": int(n_params),
        "params_encoder": int(encoder_params),
        "params_fingerprint": tree_fingerprint(state.params),
        "workdir": str(workdir),
    }
    losses = [r["loss"] for r in read_metrics(workdir) if "loss" in r]
    if losses:
        summary["final_loss"] = losses[-1]
    if config.eval.get("enabled", True):
        eval_start = time.time()
        summary.update(method.evaluate(state.params, state.model_state, mesh))
        summary["eval_wall_time_s"] = time.time() - eval_start
    summary["wall_time_s"] = time.time() - start_time
    write_json(workdir / "summary.json", summary)
    if jax.process_index() == 0:
        plots.plot_curves(workdir, keys=("loss", "learning_rate"))
    writer.close()
    ckpt.close()
    return summary
