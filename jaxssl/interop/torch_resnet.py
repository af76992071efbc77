"""torchvision / timm ResNet state dicts (conv1, bn1, layer1.0.conv1, ..., downsample.0/1, fc)
<-> jaxssl ResNet params and batch statistics (stem_conv, stem_bn, stage1_block0/conv1, ...).

Both are ResNet v1.5 (stride on the 3x3 conv of a bottleneck) with the 7x7/2 + max-pool stem:
jaxssl's `stem="imagenet"`. The stage sizes, block type and width multiplier are read from the
tensors themselves; the classifier `fc` is not part of the encoder.
"""

import re
from typing import Any

import numpy as np

from jaxssl.config import ConfigError
from jaxssl.interop import mapping
from jaxssl.interop.mapping import Reader

PRESETS = {"resnet18": ((2, 2, 2, 2), "basic"), "resnet34": ((3, 4, 6, 3), "basic")}
PRESETS["resnet50"] = ((3, 4, 6, 3), "bottleneck")
_LAYER = re.compile(r"^layer(\d+)\.(\d+)\.conv1\.weight$")


def is_resnet(names: set[str] | dict) -> bool:
    """Whether a state dict has torchvision / timm ResNet names."""
    return "conv1.weight" in names and "layer1.0.conv1.weight" in names


def resnet_block(reader: Reader) -> dict[str, Any]:
    """The jaxssl model block of a ResNet state dict: name, stem, width (and stage_sizes)."""
    counts: dict[int, int] = {}
    for name in reader.tensors:
        m = _LAYER.match(name)
        if m:
            counts[int(m.group(1))] = max(counts.get(int(m.group(1)), 0), int(m.group(2)) + 1)
    stages = tuple(counts[i] for i in sorted(counts))
    kind = "bottleneck" if reader.has("layer1.0.conv3.weight") else "basic"
    stem = reader.tensors["conv1.weight"]
    if tuple(stem.shape[2:]) != (7, 7):
        raise ConfigError(
            f"{reader.source}: stem conv is {tuple(stem.shape[2:])}, jaxssl maps the 7x7 "
            "torchvision / timm stem only (no deep stem variants)"
        )
    name = next((n for n, (s, b) in PRESETS.items() if s == stages and b == kind), None)
    block: dict[str, Any] = {
        "name": name or ("resnet50" if kind == "bottleneck" else "resnet18"),
        "stem": "imagenet",
        "width": stem.shape[0] / 64,
    }
    if name is None:
        block["stage_sizes"] = list(stages)
    return block


def _bn(reader: Reader, name: str) -> tuple[dict, dict]:
    if reader.has(f"{name}.num_batches_tracked"):
        reader.used.add(f"{name}.num_batches_tracked")
    params = {"scale": reader.take(f"{name}.weight"), "bias": reader.take(f"{name}.bias")}
    stats = {"mean": reader.take(f"{name}.running_mean"), "var": reader.take(f"{name}.running_var")}
    return params, stats


def resnet_params(reader: Reader, block: dict[str, Any]) -> tuple[dict, dict]:
    """(params, batch_stats) of the jaxssl ResNet encoder."""
    stages = block.get("stage_sizes") or PRESETS[block["name"]][0]
    params: dict[str, Any] = {
        "stem_conv": {"kernel": mapping.conv_to_flax(reader.take("conv1.weight"))}
    }
    stats: dict[str, Any] = {}
    params["stem_bn"], stats["stem_bn"] = _bn(reader, "bn1")
    bottleneck = reader.has("layer1.0.conv3.weight")
    for i, n in enumerate(stages):
        for j in range(n):
            src, dst = f"layer{i + 1}.{j}", f"stage{i + 1}_block{j}"
            p, s = {}, {}
            for k in (1, 2, 3) if bottleneck else (1, 2):
                p[f"conv{k}"] = {
                    "kernel": mapping.conv_to_flax(reader.take(f"{src}.conv{k}.weight"))
                }
                p[f"bn{k}"], s[f"bn{k}"] = _bn(reader, f"{src}.bn{k}")
            if reader.has(f"{src}.downsample.0.weight"):
                w = reader.take(f"{src}.downsample.0.weight")
                p["proj_conv"] = {"kernel": mapping.conv_to_flax(w)}
                p["proj_bn"], s["proj_bn"] = _bn(reader, f"{src}.downsample.1")
            params[dst], stats[dst] = p, s
    return params, stats


def resnet_state(params: dict[str, Any], stats: dict[str, Any], block: dict[str, Any]) -> dict:
    """torchvision / timm state dict of a jaxssl ResNet encoder (no `fc`)."""
    if block.get("stem", "cifar") != "imagenet":
        raise ConfigError(
            "format=hf (torchvision / timm ResNet) needs --config.model.stem=imagenet; the CIFAR "
            "stem (3x3, no max-pool) has no torchvision / timm layout: use onnx or stablehlo"
        )

    def bn(name: str, p: dict, s: dict) -> dict:
        return {
            f"{name}.weight": p["scale"],
            f"{name}.bias": p["bias"],
            f"{name}.running_mean": s["mean"],
            f"{name}.running_var": s["var"],
            f"{name}.num_batches_tracked": np.zeros((), np.int64),
        }

    sd = {"conv1.weight": mapping.conv_to_torch(params["stem_conv"]["kernel"])}
    sd.update(bn("bn1", params["stem_bn"], stats["stem_bn"]))
    for dst, p in params.items():
        m = re.match(r"^stage(\d+)_block(\d+)$", dst)
        if not m:
            continue
        src, s = f"layer{m.group(1)}.{m.group(2)}", stats[dst]
        for k in (1, 2, 3):
            if f"conv{k}" in p:
                sd[f"{src}.conv{k}.weight"] = mapping.conv_to_torch(p[f"conv{k}"]["kernel"])
                sd.update(bn(f"{src}.bn{k}", p[f"bn{k}"], s[f"bn{k}"]))
        if "proj_conv" in p:
            sd[f"{src}.downsample.0.weight"] = mapping.conv_to_torch(p["proj_conv"]["kernel"])
            sd.update(bn(f"{src}.downsample.1", p["proj_bn"], s["proj_bn"]))
    return sd
