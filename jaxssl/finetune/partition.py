"""Freezing as configuration: param-path patterns -> frozen / trainable with an lr multiplier.

Every fine-tune mode (linear, partial, full, lora, adalora, adapter) is a set of rules mapping each
param path ("encoder/conv1/kernel", "head/fc/bias", "lora/conv1/kernel/a") to a label;
optax.multi_transform then gives each label its own optimizer (set_to_zero when frozen).
"""

import re
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import optax
from flax import traverse_util

from jaxssl.train import optim

FROZEN = "frozen"
MODES = ("linear", "partial", "full", "lora", "adalora", "adapter")
# Block ids of the registered encoders: ResNet stage{i}_block{j}, cnn_small conv{i}/bn{i},
# ViT / Transformer block{i} (also block_i, layer_i, encoderblock_i).
DEFAULT_BLOCK_REGEX = (
    r"(?:^|/)(?:stage(\d+)_block(\d+)|(?:conv|bn)(\d+)"
    r"|(?:encoderblock|encoder_block|block|blocks|layer|layers)_?(\d+))(?:/|$)"
)
# Params after the last block (final norms, poolers) sit at depth L + 1, like the head.
DEFAULT_POST_REGEX = r"(?:^|/)(?:norm|final_norm|encoder_norm|ln_f|ln_final|fc_norm|pooler)(?:/|$)"
# Subtrees that mirror the encoder's paths (their depth is that of the encoder path).
ENCODER_TREES = ("encoder", "lora", "adalora", "adapter")


def flat_paths(tree: Any) -> dict[str, Any]:
    """{"a/b/c": leaf} of a nested dict pytree."""
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(tree).items()}


def block_key(path: str, block_regex: str) -> tuple[int, ...] | None:
    """The block a path (relative to the encoder) belongs to, as sortable ints, or None."""
    match = re.search(block_regex, path)
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


class Depths:
    """Depth of a path relative to the encoder: pre-block 0, block i -> i + 1, post L + 1."""

    def __init__(self, encoder_paths: Sequence[str], block_regex: str, post_regex: str):
        self.block_regex, self.post_regex = block_regex, post_regex
        keys = {block_key(p, block_regex) for p in encoder_paths} - {None}
        self.rank = {k: i + 1 for i, k in enumerate(sorted(keys))}
        self.num_blocks = len(keys)

    def of(self, path: str) -> int:
        """Depth of any params path; heads sit at L + 1, lora/adapter at their target's."""
        tree, _, rest = path.partition("/")
        if tree not in ENCODER_TREES:
            return self.num_blocks + 1
        key = block_key(rest, self.block_regex)
        if key is not None and key in self.rank:
            return self.rank[key]
        return self.num_blocks + 1 if re.search(self.post_regex, rest) else 0


def _mode_trainable(path: str, depth: int, num_blocks: int, cfg: ml_collections.ConfigDict) -> bool:
    tree = path.split("/", 1)[0]
    if tree not in ENCODER_TREES:
        return True  # heads always train
    mode = cfg.mode
    if mode == "full":
        return True
    if mode == "partial":
        return tree == "encoder" and depth > num_blocks - cfg.trainable_blocks
    if mode in ("lora", "adalora", "adapter"):
        return tree == mode
    return False  # linear


def param_labels(params: Any, cfg: ml_collections.ConfigDict) -> tuple[Any, dict[str, float]]:
    """(labels pytree like params, {label: lr multiplier}); frozen leaves get FROZEN.

    Order of precedence: cfg.rules [(regex, "frozen" | multiplier), ...], first match
    wins; then the mode's default; trainable params get layer_decay ** (L + 1 - depth).
    """
    flat = flat_paths(params)
    enc_paths = [p.split("/", 1)[1] for p in flat if p.startswith("encoder/")]
    depths = Depths(
        enc_paths,
        cfg.get("block_regex", DEFAULT_BLOCK_REGEX),
        cfg.get("post_regex", DEFAULT_POST_REGEX),
    )
    num_blocks = depths.num_blocks
    decay = cfg.get("layer_decay", 1.0)
    labels, multipliers = {}, {}
    for path in flat:
        depth = depths.of(path)
        rule = next((v for pat, v in cfg.get("rules", ()) if re.search(pat, path)), None)
        if rule is None:
            trainable = _mode_trainable(path, depth, num_blocks, cfg)
            mult = decay ** (num_blocks + 1 - depth) if trainable else 0.0
        elif rule == FROZEN:
            mult = 0.0
        else:
            mult = float(rule) * decay ** (num_blocks + 1 - depth)
        label = FROZEN if mult == 0.0 else f"lr_x{mult:.6g}"
        multipliers[label] = mult
        labels[tuple(path.split("/"))] = label
    return traverse_util.unflatten_dict(labels), multipliers


def trainable_mask(labels: Any) -> Any:
    """True where a param trains; a static pytree of Python bools."""
    return jax.tree.map(lambda label: label != FROZEN, labels)


def make_tx(
    opt_cfg: ml_collections.ConfigDict,
    batch_size: int,
    total_steps: int,
    multipliers: dict[str, float],
) -> dict[str, optax.GradientTransformation]:
    """One optimizer per label: the configured one with its lr scaled, or set_to_zero."""
    transforms = {}
    for label, mult in multipliers.items():
        if label == FROZEN:
            transforms[label] = optax.set_to_zero()  # no optimizer state for frozen params
        else:
            # Updates of adamw / sgd / lars are linear in the lr: scaling them scales the lr.
            base = optim.make_optimizer(opt_cfg, batch_size, total_steps, clip=False)
            transforms[label] = optax.chain(base, optax.scale(mult)) if mult != 1.0 else base
    return transforms


def make_optimizer(
    opt_cfg: ml_collections.ConfigDict,
    batch_size: int,
    total_steps: int,
    labels: Any,
    multipliers: dict[str, float],
) -> optax.GradientTransformation:
    """optax.multi_transform over the labelled params, clipped by the global norm of all groups."""
    tx = optax.multi_transform(make_tx(opt_cfg, batch_size, total_steps, multipliers), labels)
    clip = opt_cfg.get("grad_clip_norm", 0.0)
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


def count_params(params: Any, labels: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    sizes = jax.tree.map(lambda p, label: (p.size, label != FROZEN), params, labels)
    pairs = jax.tree.leaves(sizes, is_leaf=lambda x: isinstance(x, tuple))
    return sum(n for n, t in pairs if t), sum(n for n, _ in pairs)
