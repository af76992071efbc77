"""Public checkpoints from local files: detect the kind, read it, convert it, fit it to a model.

A Hugging Face folder (config.json with a `model_type` + model.safetensors, sharded
safetensors or pytorch_model.bin, as save_pretrained writes) of BERT, GPT-2, ViT or ViT-MAE;
or a torchvision / timm ResNet state dict (.safetensors / .pth file, or a timm folder whose
config.json names an `architecture`). The model block is built from the checkpoint's own
config (or tensors); the job's model must match it (see `fit`).
"""

import dataclasses
import json
import os
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from jaxssl.config import ConfigError
from jaxssl.interop import hf_text, hf_vit, tensors, torch_resnet
from jaxssl.interop.mapping import Reader

HF, STATE_DICT = "hf", "state_dict"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEX = "model.safetensors.index.json"
# model_type -> (family, state-dict prefixes stripped, block fn, params fn)
HF_FAMILIES = {
    "bert": (("bert.",), hf_text.bert_block, hf_text.bert_params),
    "gpt2": (("transformer.",), hf_text.gpt2_block, hf_text.gpt2_params),
    "vit": (("vit.",), hf_vit.vit_block, hf_vit.vit_params),
    "vit_mae": (("vit.",), hf_vit.vit_block, hf_vit.vit_params),
}
# Leaves on the output side of a Transformer: a job that never calls `logits` has none of them.
OPTIONAL = hf_text.HEAD


@dataclasses.dataclass
class Foreign:
    """A converted public checkpoint: jaxssl model block, encoder params and statistics."""

    path: str
    family: str  # bert | gpt2 | vit | vit_mae | resnet
    model: dict[str, Any]
    params: dict[str, Any]
    batch_stats: dict[str, Any] | None
    ignored: list[str]

    def subtrees(self) -> dict[str, Any]:
        """{dotted subtree of a jaxssl TrainState: numpy tree}, as checkpoint.restore reads."""
        out = {"params.encoder": self.params}
        if self.batch_stats is not None:
            out["model_state.batch_stats.encoder"] = self.batch_stats
        return out

    def flags(self) -> str:
        """The --config.model.* flags of this checkpoint's model block."""
        return " ".join(f"--config.model.{k}={_flag(v)}" for k, v in self.model.items())

    def describe(self) -> str:
        what = (
            f"{self.family} ({'Hugging Face folder' if self.family != 'resnet' else 'state dict'})"
        )
        if not self.ignored:
            return what
        shown = ", ".join(self.ignored[:4]) + (" ..." if len(self.ignored) > 4 else "")
        return f"{what}; not used: {len(self.ignored)} tensors ({shown})"


def _flag(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "'(" + ",".join(str(v) for v in value) + ",)'"
    return repr(value) if isinstance(value, str) else str(value)


def _config_json(folder: str) -> dict[str, Any]:
    """The folder's config.json as a dict ({} when absent or unreadable)."""
    return _json(os.path.join(folder, "config.json"))


def _weights_in(folder: str) -> list[str]:
    index = os.path.join(folder, SHARD_INDEX)
    if os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(folder, s) for s in shards]
    return [os.path.join(folder, w) for w in WEIGHTS if os.path.isfile(os.path.join(folder, w))][:1]


def detect(path: str | os.PathLike) -> str | None:
    """HF (a folder with config.json `model_type` and weights), STATE_DICT (a weights file or
    a timm folder), or None: not a public checkpoint (a jaxssl workdir, or nothing there)."""
    path = os.path.expanduser(os.fspath(path))
    if "://" in path:
        return None
    if os.path.isfile(path):
        return STATE_DICT if path.endswith(tensors.SAFETENSORS + tensors.PICKLED) else None
    if not os.path.isdir(path) or os.path.isdir(os.path.join(path, "checkpoints")):
        return None
    if not _weights_in(path):
        return None
    cfg = _config_json(path)
    return HF if "model_type" in cfg else STATE_DICT


def _read_all(files: list[str]) -> tensors.StateDict:
    state: tensors.StateDict = {}
    for f in files:
        state.update(tensors.read(f))
    return state


def load(path: str | os.PathLike) -> Foreign:
    """Reads and converts the checkpoint at path (detect() must not be None)."""
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    kind = detect(path)
    if kind is None:
        raise ConfigError(f"{path} is not a Hugging Face folder or a ResNet state dict")
    files = [path] if os.path.isfile(path) else _weights_in(path)
    if kind == HF:
        cfg = _config_json(path)
        model_type = cfg["model_type"]
        if model_type not in HF_FAMILIES:
            raise ConfigError(
                f"{path}: model_type {model_type!r} is not supported; jaxssl reads "
                f"{', '.join(HF_FAMILIES)} folders and torchvision / timm ResNet state dicts"
            )
        prefixes, block_fn, params_fn = HF_FAMILIES[model_type]
        reader = Reader(_read_all(files), path, prefixes)
        block = block_fn(cfg, reader)
        params = params_fn(reader, block)
        return Foreign(path, model_type, block, params, None, reader.unused())
    reader = Reader(_read_all(files), path, ("module.", "model."))
    if not torch_resnet.is_resnet(reader.tensors):
        raise ConfigError(
            f"{path}: a state dict without torchvision / timm ResNet names (conv1.weight, "
            "layer1.0.conv1.weight ...); other architectures need a Hugging Face folder"
        )
    block = torch_resnet.resnet_block(reader)
    params, stats = torch_resnet.resnet_params(reader, block)
    return Foreign(path, "resnet", block, params, stats, reader.unused())


def _flatten(tree: Any) -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {"": tree}
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def _optional(path: str) -> bool:
    return path.split("/")[0] in OPTIONAL


def fit(foreign: Foreign, wanted: dict[str, Any], key: str = "init_from") -> dict[str, Any]:
    """{dotted: numpy tree shaped like wanted[dotted]} from the checkpoint.

    ConfigError, naming the flags of the checkpoint's model block, when a wanted leaf is
    missing or has another shape, or when the checkpoint has encoder leaves the model lacks.
    Output-side leaves (MLM transform, separate output matrix, output bias) may be absent from
    the model (a job that never computes vocabulary scores); a missing output bias is zero.
    """
    have = foreign.subtrees()
    out: dict[str, Any] = {}
    problems: list[str] = []
    for dotted, tree in wanted.items():
        if dotted not in have:
            problems.append(f"no `{dotted}` in a {foreign.family} checkpoint")
            continue
        got, want = _flatten(have[dotted]), _flatten(tree)
        missing = [
            p for p in want if p not in got and not (p == "out_bias" and dotted == "params.encoder")
        ]
        extra = [p for p in got if p not in want and not _optional(p)]
        wrong = [
            f"{p}: checkpoint {tuple(np.shape(got[p]))} vs model {tuple(want[p].shape)}"
            for p in want
            if p in got and tuple(np.shape(got[p])) != tuple(want[p].shape)
        ]
        problems += (
            [f"missing {missing[:3]}"] * bool(missing)
            + [f"unexpected {extra[:3]}"] * bool(extra)
            + wrong[:3]
        )
        if not (missing or wrong or extra):
            arrays = {
                p: np.asarray(got[p] if p in got else np.zeros(want[p].shape), want[p].dtype)
                for p in want
            }
            out[dotted] = arrays[""] if "" in arrays else _unflatten(arrays)
    if problems:
        details = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise ConfigError(
            f"{key}={foreign.path} is a {foreign.family} checkpoint and config.model does not "
            f"fit it ({details}): set the model block (in the config file, or with flags if "
            f"it has the keys) to the checkpoint's: {foreign.flags()}"
        )
    return out


# Options the weights cannot show (no param changes shape): checked against the job's model
# block when the caller passes it. Absent from the block means the model's default.
UNSEEN = {"causal": False, "activation": "gelu_tanh", "ln_eps": 1e-6, "pos_embedding": "sincos"}


def check_options(foreign: Foreign, model: Any, key: str = "init_from") -> None:
    """ConfigError when model (the job's config.model) sets an option the weights cannot show
    (attention direction, GELU variant, LayerNorm epsilon, fixed position table) otherwise
    than the checkpoint: the shapes would fit and the outputs silently differ."""
    model = model.to_dict() if hasattr(model, "to_dict") else dict(model or {})
    name = str(model.get("name", ""))
    defaults = dict(UNSEEN, activation="gelu") if name.startswith("vit") else UNSEEN
    wrong = []
    for option, default in defaults.items():
        if option not in foreign.model:
            continue
        have, want = model.get(option, default), foreign.model[option]
        same = np.isclose(have, want, rtol=1e-3) if option == "ln_eps" else have == want
        if not same:
            wrong.append(f"model.{option}={have!r} vs the checkpoint's {want!r}")
    if wrong:
        raise ConfigError(
            f"{key}={foreign.path} is a {foreign.family} checkpoint and config.model differs in "
            f"what its weights cannot show ({'; '.join(wrong)}): set the model block to the "
            f"checkpoint's: {foreign.flags()}"
        )


def place(arrays: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """arrays put on the devices with each wanted leaf's sharding (when it has one)."""

    def put(x, like):
        sharding = getattr(like, "sharding", None)
        return jax.device_put(x, sharding) if sharding is not None else jax.numpy.asarray(x)

    return {d: jax.tree.map(put, arrays[d], wanted[d]) for d in arrays}


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def preprocessing(foreign: Foreign) -> dict[str, Any] | None:
    """The eval preprocessing (jaxssl augment block) of a vision checkpoint, None for text:
    image size, mean and std from preprocessor_config.json / timm's pretrained_cfg when the
    folder has them, else the family's published defaults (ViT 0.5, MAE / ResNet ImageNet)."""
    if foreign.family in ("bert", "gpt2"):
        return None
    from jaxssl.augment import views

    if foreign.family == "resnet":
        channels = foreign.params["stem_conv"]["kernel"].shape[2]
        size = 224
    else:
        channels = foreign.params["patch_embed"]["kernel"].shape[2]
        cfg = _config_json(foreign.path)
        size = cfg.get("image_size", 224)
        size = size if isinstance(size, int) else size[0]
    imagenet = foreign.family in ("resnet", "vit_mae") and channels == 3
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else ((0.5,) * channels,) * 2
    folder = foreign.path if os.path.isdir(foreign.path) else os.path.dirname(foreign.path)
    pre = _json(os.path.join(folder, "preprocessor_config.json"))
    timm_cfg = _config_json(folder).get("pretrained_cfg") or {}
    if "image_mean" in pre:
        mean, std = tuple(pre["image_mean"]), tuple(pre["image_std"])
    elif "mean" in timm_cfg:
        mean, std = tuple(timm_cfg["mean"]), tuple(timm_cfg["std"])
    if foreign.family == "resnet" and "input_size" in timm_cfg:
        size = int(timm_cfg["input_size"][-1])
    block = views.default_config("simclr").to_dict()
    return {**block, "image_size": int(size), "mean": mean, "std": std}


def _json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
