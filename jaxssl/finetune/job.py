"""The `finetune` job: a pre-trained encoder + a new head on the one job skeleton.

Fine-tuning is the generic train step with a trainable partition (finetune/partition.py), so
precision, remat, mesh.fsdp, skip_nonfinite, preemption and checkpoint fallback behave
exactly as in pre-training.
"""

from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath
from jax.sharding import Mesh

from jaxssl.data import sources, subset
from jaxssl.evaluate import features as features_lib
from jaxssl.evaluate import metrics
from jaxssl.evaluate.confusion_plot import write_confusion_matrix
from jaxssl.finetune import adalora, partition
from jaxssl.finetune.method import FineTune
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import checkpoint, optim, skeleton


def num_outputs(config: ml_collections.ConfigDict, info: sources.DatasetInfo) -> int:
    """Classes for classification; finetune.num_outputs (default 1) for regression."""
    if config.finetune.get("task", "classification") == "regression":
        return int(config.finetune.get("num_outputs", 1))
    return info.num_classes


def evaluate(
    method: FineTune, state: Any, config: ml_collections.ConfigDict, mesh: Mesh, workdir: Any
) -> dict[str, Any]:
    """Test-split metrics; classification also writes plots/confusion_matrix.png."""
    fn = features_lib.feature_fn(method.encode, ["logits"], mesh)
    feats = features_lib.extract(
        fn,
        state.params,
        state.model_state,
        sources.get_source(config.dataset, config.dataset.test_split),
        batch_size=config.eval.batch_size,
        mesh=mesh,
    )
    outputs, labels = feats.host("logits")
    extra: dict[str, Any] = {}
    if adalora.KEY in state.model_state:  # the final rank of every adapted matrix
        ranks = adalora.ranks(state.model_state[adalora.KEY])
        extra = {"adalora_ranks": ranks, "adalora_total_rank": sum(ranks.values())}
    if config.finetune.get("task", "classification") == "regression":
        preds = outputs[:, 0] if outputs.shape[1] == 1 else outputs
        report = metrics.regression_report(labels, preds)
        return {**{k: float(v) for k, v in report.items()}, **extra}
    report = metrics.classification_summary(labels, outputs, method.model.num_outputs)
    cm = np.asarray(report.pop("confusion_matrix"))
    if jax.process_index() == 0:
        write_confusion_matrix(cm, epath.Path(workdir) / "plots" / "confusion_matrix.png")
    return {
        **{k: float(v) for k, v in report.items()},
        "test_examples": int(len(labels)),
        **extra,
    }


def build(config: ml_collections.ConfigDict, mesh: Mesh) -> skeleton.JobParts:
    """Labelled subset, model, partitioned optimizer and the encoder loader of init_from."""
    del mesh
    ft = config.finetune
    info = sources.dataset_info(config.dataset)
    full_train = sources.get_source(config.dataset, config.dataset.train_split)
    indices = subset.balanced_indices(
        subset.read_labels(full_train), ft.label_fraction, ft.get("label_seed", 0)
    )
    # Tiled to a batch at least: 1% of a small dataset can be fewer examples than one batch.
    train_source = subset.SubsetSource(full_train, indices, min_length=config.batch_size)

    model = FineTuneModel(config, num_outputs(config, info))
    abstract = jax.eval_shape(
        model.init, jax.random.PRNGKey(config.seed), skeleton.sample_batch(full_train)
    )
    labels, multipliers = partition.param_labels(abstract[0], ft)
    method = FineTune(model, labels, abstract[1])
    tx = partition.make_optimizer(
        config.optimizer, config.batch_size, config.total_steps, labels, multipliers
    )
    n_train, n_total = partition.count_params(abstract[0], labels)
    init_from = config.get("init_from") or None
    return skeleton.JobParts(
        method=method,
        train_source=train_source,
        tx=tx,
        schedule=optim.make_schedule(config.optimizer, config.batch_size, config.total_steps),
        evaluate=lambda state, mesh, workdir: evaluate(method, state, config, mesh, workdir),
        trainable=method.mask,
        init_from=(lambda state: checkpoint.load_encoder(state, init_from)) if init_from else None,
        summary={
            "mode": ft.mode,
            "init_from": init_from,
            "label_fraction": ft.label_fraction,
            "labelled_examples": int(len(indices)),
            "params_trainable": int(n_train),
        },
        banner=lambda state: (
            f"finetune mode={ft.mode}: {n_train:,} trainable of {n_total:,} params "
            f"({100 * n_train / n_total:.2f}%); {len(indices)} labelled examples"
        ),
        desc=f"finetune[{ft.mode}]",
    )


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Fine-tunes per config.finetune from config.init_from (or scratch); returns the summary."""
    return skeleton.run(config, workdir, build)
