"""The `predict` and `embed` jobs: a trained run's checkpoint -> one .npz for a dataset split.

predict (a finetune run): arrays `predictions` (class ids, or values for regression),
`logits` and `labels`. embed (a finetune or pretrain run): `embeddings` (the encoder feature
`predict.feature`, LoRA merged and adapters applied for fine-tuned runs) and `labels`.
Model, augmentation and fine-tune settings come from the run's config.json; the dataset and
split from this job's config, so a model can be applied to another dataset of the same shape.
"""

from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from jaxssl import sharding
from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.evaluate import features as features_lib
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import checkpoint
from jaxssl.train.skeleton import sample_batch, say, write_json


def _head_outputs(run: checkpoint.RunCheckpoint) -> int:
    """Output width of the saved head: the last dimension of its final kernel."""
    shapes = run.shapes("params.head") or {}
    last = "fc/kernel" if "fc/kernel" in shapes else "out/kernel"
    return int(shapes[last][-1])


def model_of(run: checkpoint.RunCheckpoint) -> tuple[FineTuneModel, bool]:
    """(model, is_finetune) of a run: a pretrain run gives its encoder with a 1-wide head."""
    run_cfg = ml_collections.ConfigDict(run.config())
    is_finetune = run_cfg.get("job", "pretrain") == "finetune"
    if not is_finetune:  # a pre-trained encoder: embeddings through the linear-mode path
        run_cfg.finetune = ml_collections.ConfigDict({"mode": "linear", "train_augment": False})
    return FineTuneModel(run_cfg, _head_outputs(run) if is_finetune else 1), is_finetune


def load_model(
    workdir: str, dataset_cfg: ml_collections.ConfigDict | None, mesh: Any
) -> tuple[FineTuneModel, Any, Any]:
    """(model, params, model_state) of a run's newest checkpoint, replicated on the mesh.

    dataset_cfg gives the input shapes (its train split must be readable); None: the run's own.
    """
    run = checkpoint.RunCheckpoint(workdir)
    try:
        if dataset_cfg is None:
            dataset_cfg = ml_collections.ConfigDict(run.config()).get("dataset")
            if dataset_cfg is None:
                raise ConfigError(f"{workdir} has no config.json: pass a jaxssl run's workdir")
        model, is_finetune = model_of(run)
        batch = sample_batch(sources.get_source(dataset_cfg, dataset_cfg.train_split))
        params, model_state = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
        placed = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding.replicated(mesh)),
            (params, model_state),
        )
        if is_finetune:
            loaded = run.restore({"params": placed[0], "model_state": placed[1]})
            return model, loaded["params"], loaded["model_state"]
        loaded = run.restore(checkpoint.encoder_subtrees(*placed))
    finally:
        run.close()
    params = {"encoder": loaded["params.encoder"]}
    model_state = {
        c: {"encoder": loaded[f"model_state.{c}.encoder"]}
        for c in model_state
        if f"model_state.{c}.encoder" in loaded
    }
    return model, params, model_state


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Writes workdir/{predictions|embeddings}_<split>.npz; returns a small summary."""
    mesh = sharding.make_mesh()
    pred = config.get("predict", ml_collections.ConfigDict())
    split = pred.get("split", "test")
    model, params, model_state = load_model(config.init_from, config.dataset, mesh)
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = sources.get_source(config.dataset, split)
    feature = "logits" if config.job == "predict" else pred.get("feature", "pooled")

    def encode(params, model_state, batch):
        x = model.inputs(batch, None)
        if config.job == "embed":  # the encoder alone: no head output is needed
            return model.encode(params, model_state, x, train=False)[1]
        return {"logits": model.apply(params, model_state, x, False)[0]}

    fn = features_lib.feature_fn(encode, [feature], mesh)
    feats = features_lib.extract(
        fn, params, model_state, source, batch_size=pred.get("batch_size", 256), mesh=mesh
    )
    outputs, labels = feats.host(feature)
    if config.job == "predict":
        regression = model.ft.get("task", "classification") == "regression"
        predictions = outputs[:, 0] if regression and outputs.shape[1] == 1 else outputs
        arrays = {
            "predictions": predictions if regression else outputs.argmax(-1).astype(np.int32),
            "logits": outputs,
            "labels": labels,
        }
        path = workdir / f"predictions_{split}.npz"
    else:
        arrays = {"embeddings": outputs, "labels": labels}
        path = workdir / f"embeddings_{split}.npz"
    summary = {
        "job": config.job,
        "init_from": config.init_from,
        "split": split,
        "examples": int(len(labels)),
        "file": str(path),
    }
    if config.job == "predict" and not regression:
        summary["accuracy"] = float(np.mean(arrays["predictions"] == labels))
    if jax.process_index() == 0:
        with path.open("wb") as f:
            np.savez(f, **arrays)
        write_json(workdir / "summary.json", summary)
    say(f"wrote {path} ({len(labels)} examples)")
    return summary
