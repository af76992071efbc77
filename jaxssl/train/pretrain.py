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
from jaxssl.train import optim, plots
from jaxssl.train import step as step_lib
from jaxssl.train.checkpoint import Checkpointer
from jaxssl.train.loop import train_loop
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
    start_time = time.time()
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    # --- Mesh, method, data ------------------------------------------------------
    mesh = mesh_lib.make_mesh()
    method = methods.get_method(config)
    train_source = sources.get_source(config.dataset, config.dataset.train_split)
    data_iter = pipeline.train_iterator(
        train_source, global_batch_size=config.batch_size, seed=config.seed
    )

    # --- State, optimizer, checkpoint --------------------------------------------
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, sample_batch(train_source), mesh)
    ckpt = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
    latest = ckpt.latest_step()
    if latest is not None:
        state = ckpt.restore(latest, state, data_iter)
        if jax.process_index() == 0:
            print(f"jaxssl: resuming from step {latest} ({ckpt.directory})")
    else:
        write_json(workdir / "config.json", config.to_dict())
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    encoder_params = sum(x.size for x in jax.tree.leaves(state.params["encoder"]))

    # --- Train loop -------------------------------------------------------------
    train_step = step_lib.jit_train_step(
        step_lib.make_train_step(method, tx, schedule), state, mesh
    )
    writer = MetricWriter(workdir, config)
    state, train_time = train_loop(
        state,
        train_step,
        data_iter,
        config=config,
        mesh=mesh,
        ckpt=ckpt,
        writer=writer,
        desc="pretrain",
    )

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
