"""ViT and ViT-MAE checkpoints (Hugging Face layout) <-> jaxssl ViT params.

HF adds a position to the cls token too; jaxssl's `cls` param is the cls token plus that
position (folded in on load, exported with a zero position), so outputs are equal. ViT-MAE's
fixed table is recognised: equal to jaxssl's `sincos` or to the MAE layout (`sincos_mae`),
otherwise it is loaded as a learned table. q/k/v kernels are [width, heads, head_dim], the
output kernel [heads, head_dim, width]; the patch embedding is a Flax Conv.
"""

from typing import Any

import numpy as np

from jaxssl.config import ConfigError
from jaxssl.interop import mapping
from jaxssl.interop.mapping import Reader
from jaxssl.models import vit as vit_lib


def _grid(cfg: dict[str, Any]) -> tuple[int, int]:
    size, patch = cfg.get("image_size", 224), cfg.get("patch_size", 16)
    size = (size, size) if isinstance(size, int) else tuple(size)
    patch = patch if isinstance(patch, int) else patch[0]
    return size[0] // patch, size[1] // patch


def _position_kind(table: np.ndarray, gh: int, gw: int) -> str:
    """Which jaxssl positions a [1 + gh * gw, width] table (cls row first) is."""
    patches, d = table[1:], table.shape[-1]
    if np.abs(table[0]).max() < 1e-6 and d % 4 == 0:
        for kind, fn in (("sincos", vit_lib.sincos_2d), ("sincos_mae", vit_lib.sincos_2d_mae)):
            if np.allclose(patches, fn(gh, gw, d), atol=1e-5):
                return kind
    return "learned"


def vit_block(cfg: dict[str, Any], reader: Reader) -> dict[str, Any]:
    """The jaxssl model block of a ViT / ViT-MAE config.json (+ its position table)."""
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise ConfigError(f"{reader.source}: ViT hidden_act {act!r} unsupported (jaxssl: gelu)")
    patch = cfg.get("patch_size", 16)
    gh, gw = _grid(cfg)
    table = reader.tensors["embeddings.position_embeddings"][0]
    return {
        "name": "vit",
        "patch_size": patch if isinstance(patch, int) else patch[0],
        "width": cfg["hidden_size"],
        "depth": cfg["num_hidden_layers"],
        "num_heads": cfg["num_attention_heads"],
        "mlp_ratio": cfg["intermediate_size"] / cfg["hidden_size"],
        "pos_embedding": _position_kind(np.asarray(table, np.float32), gh, gw),
        "pool": "cls",
        "ln_eps": float(cfg.get("layer_norm_eps", 1e-12)),
    }


def vit_params(reader: Reader, block: dict[str, Any]) -> dict[str, Any]:
    """jaxssl ViT params of a ViTModel / ViTMAEModel state dict (qkv_bias=False: zero biases)."""
    d, h = block["width"], block["num_heads"]
    e = "embeddings"
    table = reader.take(f"{e}.position_embeddings")  # [1, 1 + N, d]
    p: dict[str, Any] = {
        "patch_embed": {
            "kernel": mapping.conv_to_flax(reader.take(f"{e}.patch_embeddings.projection.weight")),
            "bias": reader.take(f"{e}.patch_embeddings.projection.bias"),
        },
        "cls": reader.take(f"{e}.cls_token") + table[:, :1],
    }
    if block["pos_embedding"] == "learned":
        p["pos_embedding"] = table[:, 1:]
    blocks: dict[str, Any] = {}
    for i in range(block["depth"]):
        layer = f"encoder.layer.{i}"
        attn = {}
        for n in ("query", "key", "value"):
            name = f"{layer}.attention.attention.{n}"
            bias = reader.take(f"{name}.bias") if reader.has(f"{name}.bias") else np.zeros(d)
            attn[n] = {
                "kernel": reader.take(f"{name}.weight").T.reshape(d, h, d // h),
                "bias": np.asarray(bias, np.float32).reshape(h, d // h),
            }
        out = reader.dense(f"{layer}.attention.output.dense")
        attn["out"] = {"kernel": out["kernel"].reshape(h, d // h, d), "bias": out["bias"]}
        blocks[f"block{i}"] = {
            "norm1": reader.layer_norm(f"{layer}.layernorm_before"),
            "attn": attn,
            "norm2": reader.layer_norm(f"{layer}.layernorm_after"),
            "Dense_0": reader.dense(f"{layer}.intermediate.dense"),
            "Dense_1": reader.dense(f"{layer}.output.dense"),
        }
    blocks["norm"] = reader.layer_norm("layernorm")
    p["transformer"] = blocks
    return p


def vit_state(
    params: dict[str, Any], block: dict[str, Any], image_size: int, channels: int
) -> tuple[dict, dict]:
    """(state dict, config.json) of an HF ViTModel (load with add_pooling_layer=False)."""
    if block.get("pool", "cls") != "cls":
        raise ConfigError(
            "format=hf: HF ViT always has a cls token; this ViT has pool='mean' (no cls): "
            "use export.format=onnx or stablehlo"
        )
    d, h, patch = block["width"], block["num_heads"], block["patch_size"]
    grid = image_size // patch
    kind = block.get("pos_embedding", "sincos")
    if kind == "learned":
        table = np.asarray(params["pos_embedding"])[0]
    else:
        fn = vit_lib.sincos_2d if kind == "sincos" else vit_lib.sincos_2d_mae
        table = fn(grid, grid, d)
    e = "embeddings"
    sd = {
        f"{e}.cls_token": np.asarray(params["cls"]),
        f"{e}.position_embeddings": np.concatenate([np.zeros((1, d), np.float32), table])[None],
        f"{e}.patch_embeddings.projection.weight": mapping.conv_to_torch(
            params["patch_embed"]["kernel"]
        ),
        f"{e}.patch_embeddings.projection.bias": params["patch_embed"]["bias"],
        **mapping.flat("layernorm", mapping.layer_norm(params["transformer"]["norm"])),
    }
    for i in range(block["depth"]):
        b, layer = params["transformer"][f"block{i}"], f"encoder.layer.{i}"
        for n in ("query", "key", "value"):
            q = b["attn"][n]
            sd[f"{layer}.attention.attention.{n}.weight"] = np.asarray(q["kernel"]).reshape(d, d).T
            sd[f"{layer}.attention.attention.{n}.bias"] = np.asarray(q["bias"]).reshape(d)
        out = b["attn"]["out"]
        sd[f"{layer}.attention.output.dense.weight"] = np.asarray(out["kernel"]).reshape(d, d).T
        sd[f"{layer}.attention.output.dense.bias"] = out["bias"]
        sd.update(mapping.flat(f"{layer}.layernorm_before", mapping.layer_norm(b["norm1"])))
        sd.update(mapping.flat(f"{layer}.layernorm_after", mapping.layer_norm(b["norm2"])))
        sd.update(mapping.flat(f"{layer}.intermediate.dense", mapping.linear(b["Dense_0"])))
        sd.update(mapping.flat(f"{layer}.output.dense", mapping.linear(b["Dense_1"])))
    config = {
        "model_type": "vit",
        "architectures": ["ViTModel"],
        "hidden_size": d,
        "num_hidden_layers": block["depth"],
        "num_attention_heads": h,
        "intermediate_size": int(round(d * block.get("mlp_ratio", 4.0))),
        "hidden_act": "gelu",
        "layer_norm_eps": block.get("ln_eps", 1e-6),
        "image_size": image_size,
        "patch_size": patch,
        "num_channels": channels,
        "qkv_bias": True,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    return sd, config
