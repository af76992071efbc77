"""The `finetune` job: reuse a pre-trained encoder, attach a head, train, report test metrics."""

import time
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from jaxssl.data import pipeline, sources, subset
from jaxssl.evaluate import metrics
from jaxssl.evaluate.confusion_plot import write_confusion_matrix
from jaxssl.evaluate.features import extract_features
from jaxssl.finetune import init_from as init_lib
from jaxssl.finetune import partition
from jaxssl.finetune import step as step_lib
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import mesh as mesh_lib
from jaxssl.train import optim, plots, resume
from jaxssl.train.checkpoint import Checkpointer
from jaxssl.train.loop import train_loop
from jaxssl.train.pretrain import sample_batch, write_json
from jaxssl.train.step import jit_train_step
from jaxssl.train.writers import MetricWriter, read_metrics


def num_outputs(config: ml_collections.ConfigDict, info: sources.DatasetInfo) -> int:
    """Classes for classification; finetune.num_outputs (default 1) for regression."""
    if config.finetune.get("task", "classification") == "regression":
        return int(config.finetune.get("num_outputs", 1))
    return info.num_classes


def encoder_subtrees(params: Any, model_state: Any) -> dict[str, Any]:
    """{dotted path in a saved TrainState: subtree} of the encoder's params and statistics."""
    out = {"params.encoder": params["encoder"]}
    for collection, tree in model_state.items():
        out[f"model_state.{collection}.encoder"] = tree["encoder"]
    return out


def load_encoder(
    model: FineTuneModel, params: Any, model_state: Any, workdir: str, mesh: Any
) -> tuple[Any, Any]:
    """params / model_state with the encoder subtrees replaced by the run's latest checkpoint."""
    state_dir = init_lib.latest_checkpoint(workdir)
    expected = encoder_subtrees(params, model_state)
    init_lib.check_compatible(state_dir, expected, init_lib.run_config(workdir).get("model"))
    loaded = init_lib.restore(state_dir, expected, mesh)
    params = {**params, "encoder": loaded["params.encoder"]}
    model_state = {
        c: {**t, "encoder": loaded[f"model_state.{c}.encoder"]} for c, t in model_state.items()
    }
    if jax.process_index() == 0:
        print(f"jaxssl: encoder loaded from {state_dir}")
    return params, model_state


def logits_fn(model: FineTuneModel):
    """encode-style function for extract_features: eval-mode head outputs under "logits"."""

    def encode(params, model_state, batch):
        outputs, feats, _ = model.apply(params, model_state, model.inputs(batch, None), False)
        return {"logits": outputs, **feats}

    return encode


def evaluate(
    model: FineTuneModel, state: Any, config: ml_collections.ConfigDict, mesh: Any, workdir: Any
) -> dict[str, Any]:
    """Test-split metrics; classification also writes plots/confusion_matrix.png."""
    source = sources.get_source(config.dataset, config.dataset.test_split)
    outputs, labels = extract_features(
        logits_fn(model),
        state.params,
        state.model_state,
        source,
        batch_size=config.eval.batch_size,
        feature="logits",
        mesh=mesh,
    )
    if config.finetune.get("task", "classification") == "regression":
        preds = outputs[:, 0] if outputs.shape[1] == 1 else outputs
        return {k: float(v) for k, v in metrics.regression_report(labels, preds).items()}
    report = metrics.classification_summary(labels, outputs, model.num_outputs)
    cm = np.asarray(report.pop("confusion_matrix"))
    if jax.process_index() == 0:
        write_confusion_matrix(cm, epath.Path(workdir) / "plots" / "confusion_matrix.png")
    return {**{k: float(v) for k, v in report.items()}, "test_examples": int(len(labels))}


def build(
    config: ml_collections.ConfigDict, mesh: Any, sample: dict[str, np.ndarray], load: bool = True
) -> tuple[FineTuneModel, Any, Any, Any, Any]:
    """(model, state on the mesh, param labels, optimizer, schedule); loads init_from if set."""
    info = sources.dataset_info(config.dataset)
    model = FineTuneModel(config, num_outputs(config, info))
    params, model_state = step_lib.init_state(model, config.seed, sample, mesh)
    if config.get("init_from") and load:
        params, model_state = load_encoder(model, params, model_state, config.init_from, mesh)
    labels, multipliers = partition.param_labels(params, config.finetune)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = partition.make_optimizer(
        config.optimizer, config.batch_size, config.total_steps, labels, multipliers
    )
    state = step_lib.make_state(params, model_state, tx, config.seed, mesh)
    return model, state, labels, tx, schedule


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Fine-tunes per config.finetune from config.init_from (or scratch); returns the summary."""
    start_time = time.time()
    ft = config.finetune
    # A checkpoint of a different model / optimizer / dataset is refused (or run beside).
    workdir = resume.resolve_workdir(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    # --- Mesh, labelled subset, data ----------------------------------------------
    mesh = mesh_lib.make_mesh()
    full_train = sources.get_source(config.dataset, config.dataset.train_split)
    indices = subset.balanced_indices(
        subset.read_labels(full_train), ft.label_fraction, ft.get("label_seed", 0)
    )
    # Tiled to a batch at least: 1% of a small dataset can be fewer examples than one batch.
    train_source = subset.SubsetSource(full_train, indices, min_length=config.batch_size)
    data_iter = pipeline.train_iterator(
        train_source, global_batch_size=config.batch_size, seed=config.seed
    )

    # --- Model, encoder params, partitioned optimizer --------------------------------
    ckpt = Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
    latest = ckpt.latest_step()
    built = build(config, mesh, sample_batch(full_train), load=latest is None)
    model, state, labels, tx, schedule = built
    if latest is not None:
        state = ckpt.restore(latest, state, data_iter)
        if jax.process_index() == 0:
            print(f"jaxssl: resuming fine-tuning from step {latest} ({ckpt.directory})")
    else:
        write_json(workdir / "config.json", config.to_dict())
    n_train, n_total = partition.count_params(state.params, labels)
    if jax.process_index() == 0:
        print(
            f"jaxssl: finetune mode={ft.mode}: {n_train:,} trainable of {n_total:,} params "
            f"({100 * n_train / n_total:.2f}%); {len(indices)} labelled examples"
        )

    # --- Train loop ---------------------------------------------------------------
    step_fn = step_lib.make_finetune_step(model, tx, schedule, labels, state.model_state)
    train_step = jit_train_step(step_fn, state, mesh)
    writer = MetricWriter(workdir, config)
    state, train_time = train_loop(
        state,
        train_step,
        data_iter,
        config=config,
        mesh=mesh,
        ckpt=ckpt,
        writer=writer,
        desc=f"finetune[{ft.mode}]",
    )

    # --- Evaluation and summary -------------------------------------------------------
    summary: dict[str, Any] = {
        "job": "finetune",
        "mode": ft.mode,
        "init_from": config.get("init_from") or None,
        "steps": int(state.step),
        "model": config.model.name,
        "dataset": config.dataset.name,
        "label_fraction": ft.label_fraction,
        "labelled_examples": int(len(indices)),
        "params_trainable": int(n_train),
        "params_total": int(n_total),
        "devices": jax.device_count(),
        "train_wall_time_s": train_time,
    }
    losses = [r["loss"] for r in read_metrics(workdir) if "loss" in r]
    if losses:
        summary["final_loss"] = losses[-1]
    summary.update(evaluate(model, state, config, mesh, workdir))
    summary["wall_time_s"] = time.time() - start_time
    write_json(workdir / "summary.json", summary)
    if jax.process_index() == 0:
        plots.plot_curves(workdir, keys=("loss", "learning_rate"))
    writer.close()
    ckpt.close()
    return summary
