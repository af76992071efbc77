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

from jaxssl.data import sources
from jaxssl.evaluate.features import extract_features
from jaxssl.finetune import init_from as init_lib
from jaxssl.finetune.job import logits_fn
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import mesh as mesh_lib
from jaxssl.train.pretrain import sample_batch, write_json


def _head_outputs(state_dir: epath.Path) -> int:
    """Output width of the saved head: the last dimension of its final kernel."""
    import orbax.checkpoint as ocp

    meta = ocp.PyTreeCheckpointHandler().metadata(state_dir)
    head = getattr(meta, "tree", meta)["params"]["head"]
    last = head["fc"] if "fc" in head else head["out"]
    return int(last["kernel"].shape[-1])


def load_model(
    workdir: str, dataset_cfg: ml_collections.ConfigDict, mesh: Any
) -> tuple[FineTuneModel, Any, Any]:
    """(model, params, model_state) of a run's latest checkpoint, replicated on the mesh.

    A pretrain run gives its encoder with a zero-width head (embeddings only).
    """
    state_dir = init_lib.latest_checkpoint(workdir)
    run_cfg = ml_collections.ConfigDict(init_lib.run_config(workdir))
    is_finetune = run_cfg.get("job", "pretrain") == "finetune"
    if not is_finetune:  # a pre-trained encoder: embeddings through the linear-mode path
        run_cfg.finetune = ml_collections.ConfigDict({"mode": "linear", "train_augment": False})
    model = FineTuneModel(run_cfg, _head_outputs(state_dir) if is_finetune else 1)
    batch = sample_batch(sources.get_source(dataset_cfg, dataset_cfg.train_split))
    params, model_state = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
    if is_finetune:
        expected = {"params": params, "model_state": model_state}
    else:
        expected = {"params.encoder": params["encoder"]}
        expected.update({f"model_state.{c}.encoder": t["encoder"] for c, t in model_state.items()})
    init_lib.check_compatible(state_dir, expected, run_cfg.get("model"))
    loaded = init_lib.restore(state_dir, expected, mesh)
    if is_finetune:
        return model, loaded["params"], loaded["model_state"]
    params = {"encoder": loaded["params.encoder"]}
    model_state = {c: {"encoder": loaded[f"model_state.{c}.encoder"]} for c in model_state}
    return model, params, model_state


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Writes workdir/{predictions|embeddings}_<split>.npz; returns a small summary."""
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = mesh_lib.make_mesh()
    pred = config.get("predict", ml_collections.ConfigDict())
    split = pred.get("split", "test")
    model, params, model_state = load_model(config.init_from, config.dataset, mesh)
    source = sources.get_source(config.dataset, split)
    feature = "logits" if config.job == "predict" else pred.get("feature", "pooled")
    encode = logits_fn(model)
    if config.job == "embed":  # the encoder alone: no head output is needed

        def encode(params, model_state, batch):
            x = model.inputs(batch, None)
            return model.encode(params, model_state, x, train=False)[1]

    outputs, labels = extract_features(
        encode,
        params,
        model_state,
        source,
        batch_size=pred.get("batch_size", 256),
        feature=feature,
        mesh=mesh,
    )
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
    if jax.process_index() == 0:
        with path.open("wb") as f:
            np.savez(f, **arrays)
        if config.job == "predict" and "predictions" in arrays and outputs.ndim == 2:
            summary["accuracy"] = float(np.mean(arrays["predictions"] == labels))
        write_json(workdir / "summary.json", summary)
        print(f"jaxssl: wrote {path} ({len(labels)} examples)")
    return summary
