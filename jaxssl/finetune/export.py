"""The `export` job: a run's encoder (or encoder + fine-tuned head, LoRA merged) as deployable
files, in workdir.

  python -m jaxssl.main --config configs/export_digits.py --workdir runs/export \
      --config.init_from=runs/ft [--config.export.formats=stablehlo,onnx,hf]

init_from is a jaxssl workdir (or a public checkpoint jaxssl reads); the model comes from it,
the input shapes and the verification batch from this job's dataset. Outputs: logits for a
fine-tuned run, else the encoder feature export.feature (default pooled). Each artifact takes
what the dataset gives, uint8 images NHWC or int32 tokens + attention_mask, with a dynamic
batch dimension:
  model.onnx                    ONNX (jax2onnx), weights inside; onnxruntime runs it
  model.stablehlo + model.weights.safetensors   jax.export serialize() bytes, weights beside
  hf/                           config.json + model.safetensors (+ tokenizer): transformers,
                                timm / torchvision (encoder only; format hf)
  export.json                   inputs, output, files, max |difference| to the JAX model
Every artifact is run on export.verify_examples real examples of export.split and compared
with the JAX model; a difference above export.tolerance is an error.
"""

import json
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from etils import epath

from jaxssl import sharding
from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.data import text as text_data
from jaxssl.finetune import adalora
from jaxssl.finetune import predict as predict_lib
from jaxssl.interop import deploy, save
from jaxssl.train import skeleton
from jaxssl.train.skeleton import say

FORMATS = ("onnx", "stablehlo", "hf")


def formats_of(config: ml_collections.ConfigDict) -> list[str]:
    """export.formats as a list; ConfigError for an unknown one or a missing install."""
    value = config.export.get("formats", "stablehlo")
    names = [f.strip() for f in (value.split(",") if isinstance(value, str) else value) if f]
    unknown = sorted(set(names) - set(FORMATS))
    if unknown or not names:
        raise ConfigError(f"export.formats={value!r}: use a comma list of {', '.join(FORMATS)}")
    if "onnx" in names:
        try:
            import jax2onnx  # noqa: F401
            import onnx  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"export.formats=onnx needs jax2onnx: {deploy.INSTALL} (or drop onnx)"
            ) from None
    return names


def check_config(config: ml_collections.ConfigDict) -> None:
    """The export job's own keys (validate.py calls this before anything is written)."""
    if not config.get("init_from"):
        raise ConfigError("job=export needs --config.init_from=<workdir of the run to export>")
    formats_of(config)


def _merged(model: Any, params: Any, model_state: Any) -> Any:
    """params with LoRA / AdaLoRA folded into the encoder kernels (adapters stay)."""
    out = {k: v for k, v in params.items() if k not in ("lora", adalora.KEY)}
    out["encoder"] = model.encoder_params(params, model_state)
    return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Writes the configured formats into workdir; returns the export.json manifest."""
    check_config(config)  # also here: run() is callable without jobs.run's validation
    ex = config.get("export") or ml_collections.ConfigDict()
    formats = formats_of(config)
    start = time.time()
    mesh = sharding.make_mesh()
    model, params, model_state = predict_lib.load_model(config.init_from, config.dataset, mesh)
    finetuned = model.config.get("job", "pretrain") == "finetune"
    feature = "logits" if finetuned else ex.get("feature", "pooled")
    image = "image" in sources.get_source(config.dataset, config.dataset.train_split)[0]
    names = ["image"] if image else ["tokens", "attention_mask"]
    out_name = "logits" if finetuned else "embeddings"

    def infer(weights: Any, *inputs: jax.Array) -> jax.Array:
        if image:  # the eval view, as matrix products (deploy.eval_view)
            x = {"x": deploy.eval_view(inputs[0], model.config.augment)}
        else:
            x = model.inputs({"tokens": inputs[0], "attention_mask": inputs[1]}, None)
        p, s = weights["params"], weights.get("model_state", {})  # {} is dropped by flatten
        if finetuned:
            return model.apply(p, s, x, False)[0]
        return model.encode(p, s, x, train=False)[1][feature]

    def reference(*inputs: jax.Array) -> jax.Array:  # the predict / embed path, unmerged
        batch = dict(zip(names, inputs, strict=True))
        x = model.inputs(batch, None)
        if finetuned:
            return model.apply(params, model_state, x, False)[0]
        return model.encode(params, model_state, x, train=False)[1][feature]

    weights = {"params": _merged(model, params, model_state), "model_state": model_state}
    weights = jax.device_get(weights)
    split = ex.get("split") or config.dataset.test_split
    source = sources.get_source(config.dataset, split)
    batch = skeleton.sample_batch(source, int(ex.get("verify_examples", 64)))
    inputs = [batch[n] for n in names]
    expected = np.asarray(jax.jit(reference)(*inputs))
    out = epath.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    specs = deploy.specs(batch, names)
    manifest: dict[str, Any] = {
        "job": "export",
        "init_from": config.init_from,
        "inputs": [
            {"name": n, "dtype": str(batch[n].dtype), "shape": [deploy.BATCH, *batch[n].shape[1:]]}
            for n in names
        ],
        "output": {
            "name": out_name,
            "feature": feature,
            "shape": [deploy.BATCH, *expected.shape[1:]],
        },
        "files": {},
        "max_abs_diff": {},
        "verify": {"split": split, "examples": len(expected)},
    }
    tolerance = float(ex.get("tolerance", 1e-4))
    if "stablehlo" in formats:
        path, wpath = out / "model.stablehlo", out / "model.weights.safetensors"
        deploy.to_stablehlo(infer, weights, specs, str(path), str(wpath))
        from safetensors.numpy import load_file

        exp = jax.export.deserialize(path.read_bytes())
        got = np.asarray(exp.call(load_file(str(wpath)), *inputs))
        manifest["files"]["stablehlo"] = [path.name, wpath.name]
        manifest["max_abs_diff"]["stablehlo"] = float(np.abs(got - expected).max())
    if "onnx" in formats:
        path = out / "model.onnx"
        deploy.to_onnx(infer, weights, specs, str(path), names, out_name, int(ex.get("opset", 23)))
        manifest["files"]["onnx"] = [path.name]
        try:
            import onnxruntime as ort
        except ImportError:
            manifest["max_abs_diff"]["onnx"] = None  # written, not verified
        else:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run([out_name], dict(zip(names, inputs, strict=True)))[0]
            manifest["max_abs_diff"]["onnx"] = float(np.abs(got - expected).max())
    if "hf" in formats:
        folder = out / "hf"
        tok, ids = None, None
        if not image:
            tokenizer = text_data.tokenizer_of(config.dataset)
            tok = getattr(tokenizer, "path", None)  # a tokenizer.json (bytes have none)
            ids = {f"{r}_token_id": getattr(tokenizer, f"{r}_id") for r in ("bos", "eos", "pad")}
        aug = model.config.get("augment") if image else None
        channels = batch["image"].shape[-1] if image else None
        family = save.save_pretrained(
            str(folder),
            save.module_block(model.encoder, model.config.model.name),
            weights["params"]["encoder"],
            (weights["model_state"].get("batch_stats") or {}).get("encoder"),
            image_size=aug.image_size if aug else None,
            channels=channels,
            mean=tuple(aug.mean) if aug else None,
            std=tuple(aug.std) if aug else None,
            tokenizer=tok,
            token_ids=ids,
        )
        manifest["files"]["hf"] = {"folder": folder.name, "family": family, "encoder_only": True}
    manifest["wall_time_s"] = time.time() - start
    bad = {k: v for k, v in manifest["max_abs_diff"].items() if v is not None and v > tolerance}
    if jax.process_index() == 0:
        (out / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if bad:
        raise RuntimeError(f"exported model differs from the JAX model by {bad} > {tolerance}")
    for fmt, diff in manifest["max_abs_diff"].items():
        say(f"{fmt}: max |difference| to the JAX model on {len(expected)} examples: {diff}")
    say(f"wrote {', '.join(map(str, manifest['files']))} to {out}")
    return manifest
