"""jaxssl encoders written in the public formats jaxssl reads: a Hugging Face folder for a
BERT- or GPT-2-shaped Transformer and a ViT, a torchvision / timm state dict for a ResNet.

Each folder round-trips: jaxssl reads it back with init_from, transformers
(BertForMaskedLM / BertModel / GPT2LMHeadModel / ViTModel .from_pretrained) or timm /
torchvision (load_state_dict of model.safetensors) load it with equal outputs (tests).
"""

import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from jaxssl.config import ConfigError
from jaxssl.interop import hf_text, hf_vit, tensors, torch_resnet

WEIGHTS = "model.safetensors"


def _numpy(tree: Any) -> Any:
    return jax.tree.map(lambda x: np.asarray(x, np.float32), jax.device_get(tree))


def _json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")


def module_block(module: Any, name: str) -> dict[str, Any]:
    """The resolved model block of a built encoder module (preset sizes filled in)."""
    skip = {"parent", "name", "dtype", "remat"}
    fields = getattr(module, "__dataclass_fields__", {})
    block = {k: getattr(module, k) for k in fields if k not in skip}
    return {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in block.items()}}


def save_pretrained(
    folder: str,
    model: dict[str, Any],
    params: Any,
    batch_stats: Any | None = None,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    tokenizer: str | None = None,
    token_ids: dict[str, int | None] | None = None,
) -> str:
    """Writes the encoder (model block + params) to folder; returns its family.

    Vision models take the image size, channels and normalisation of their eval view (the
    preprocessor_config.json / pretrained_cfg users need); text models copy the
    tokenizer.json when given, and token_ids ({"bos_token_id": ...}) go into its config.json.
    ConfigError for a model with no public counterpart.
    """
    os.makedirs(folder, exist_ok=True)
    name = str(model.get("name", ""))
    params = _numpy(params)
    if name.startswith("transformer"):
        family = hf_text.text_family(model)
        fn = hf_text.bert_state if family == "bert" else hf_text.gpt2_state
        sd, config = fn(params, model)
    elif name.startswith("vit"):
        family = "vit"
        sd, config = hf_vit.vit_state(params, model, int(image_size), int(channels))
        size = {"height": int(image_size), "width": int(image_size)}
        pre = {"image_mean": list(mean), "image_std": list(std), "size": size}
        _json(os.path.join(folder, "preprocessor_config.json"), {**pre, "do_normalize": True})
    elif name.startswith("resnet"):
        family = "resnet"
        sd = torch_resnet.resnet_state(params, _numpy(batch_stats), model)
        n_features = sd[max(k for k in sd if k.endswith(".weight") and "conv" in k)].shape[0]
        config = {
            "architecture": name,
            "num_classes": 0,
            "num_features": int(n_features),
            "pretrained_cfg": {
                "input_size": [int(channels), int(image_size), int(image_size)],
                "mean": list(mean),
                "std": list(std),
            },
            "jaxssl_model": dict(model),
        }
    else:
        raise ConfigError(
            f"format=hf: model.name={name!r} has no public counterpart (transformer_*, vit*, "
            "resnet*): use export.format=onnx or stablehlo"
        )
    if family in ("bert", "gpt2"):
        config.update({k: v for k, v in (token_ids or {}).items() if v is not None})
    tensors.write(os.path.join(folder, WEIGHTS), {k: np.asarray(v) for k, v in sd.items()})
    _json(os.path.join(folder, "config.json"), config)
    if tokenizer and os.path.isfile(tokenizer):
        shutil.copy(tokenizer, os.path.join(folder, "tokenizer.json"))
        config_path = os.path.join(os.path.dirname(tokenizer), "tokenizer_config.json")
        if os.path.isfile(config_path):
            shutil.copy(config_path, os.path.join(folder, "tokenizer_config.json"))
    return family
