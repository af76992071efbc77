"""The interface every self-supervised method implements.

A method is the unit users add: one file, one registry line, one config. The generic train
step only calls init / loss / after_update, and evaluation calls encode, so a new objective
never edits the loop. The base class supplies the boilerplate: config checks in __init__
raise ValueError (reported as config errors before compiling), the online probe
(self.probe), and a default `encode` of the encoder's features in eval mode.
"""

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from jaxssl import models
from jaxssl.methods import online_probe

Params = Any
ModelState = dict[str, Any]
Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class Option(NamedTuple):
    """A method key a config may leave out: the value it then has, and what it means."""

    default: Any
    meaning: str


# The online probe's key, for the methods that train one on labelled image batches.
PROBE_OPTIONS = {
    online_probe.KEY: Option(
        online_probe.DEFAULT, "linear head on stop-gradient features trained beside the method"
    )
}


class Method(abc.ABC):
    """init + loss over a global batch, plus deterministic features for evaluation."""

    encoder: nn.Module  # set by the subclass; its params live under params["encoder"]
    # The method.* keys a config may leave out, read only through self.option. The config
    # loader fills them in, so `--config.method.KEY=...` can set them and `jaxssl keys` lists
    # them; resume reads a saved config without one as having run with its default.
    OPTIONS: ClassVar[dict[str, Option]] = {}

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.augment = config.get("augment")
        probed = online_probe.KEY in self.OPTIONS and self.option(config, online_probe.KEY)
        self.probe = online_probe.OnlineProbe(config, enabled=probed)

    @classmethod
    def option(cls, config: ml_collections.ConfigDict, key: str) -> Any:
        """config.method[key], or its OPTIONS default when the config leaves it out."""
        return config.method.get(key, cls.OPTIONS[key].default)

    @abc.abstractmethod
    def init(self, rng: jax.Array, batch: Batch) -> tuple[Params, ModelState]:
        """Returns (trainable params, non-gradient state) for a batch of this shape.

        params["encoder"] must be the encoder's params subtree: evaluation and the
        fine-tune step reuse it as it is.
        """

    @abc.abstractmethod
    def loss(
        self,
        params: Params,
        model_state: ModelState,
        batch: Batch,
        rng: jax.Array,
        step: jax.Array,
    ) -> tuple[jax.Array, tuple[Metrics, ModelState]]:
        """Scalar loss to minimise, named metrics and the updated non-gradient state."""

    def after_update(self, params: Params, model_state: ModelState, step: jax.Array) -> ModelState:
        """Hook after the optimizer update (EMA targets, queues). Default: unchanged."""
        del params, step
        return model_state

    def evaluate(
        self, params: Params, model_state: ModelState, mesh: Mesh
    ) -> dict[str, Any] | None:
        """A method's own evaluation for summary.json, or None for the standard protocol
        (kNN, linear and online probes on frozen features, jaxssl/evaluate/protocol.py)."""
        del params, model_state, mesh
        return None

    def encode(self, params: Params, model_state: ModelState, batch: Batch) -> dict[str, jax.Array]:
        """Deterministic encoder features of a batch (eval mode), keyed by name.

        Images: the eval view of config.augment; text: tokens with their padding mask.
        """
        variables = encoder_variables(params, model_state)
        if "tokens" in batch:
            kwargs = {"attention_mask": batch["attention_mask"] > 0}
            _, features = self.encoder.apply(variables, batch["tokens"], train=False, **kwargs)
            return features
        from jaxssl.augment import views

        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        _, features = self.encoder.apply(variables, x, train=False)
        return features


def encoder_variables(params: Params, model_state: ModelState) -> dict[str, Any]:
    """The encoder's variables: its params subtree plus its slice of each collection."""
    variables = {"params": params["encoder"]}
    for collection, tree in model_state.items():
        if isinstance(tree, dict) and "encoder" in tree:
            variables[collection] = tree["encoder"]
    return variables


BN_PER_VIEW = "each view normalised in its own batch-norm batch, or all views of one size in one"


def bn_per_view(per_view: Any) -> bool:
    """method.bn_per_view, checked (ValueError): see view_groups."""
    if not isinstance(per_view, bool):
        raise ValueError(f"method.bn_per_view={per_view!r} must be True or False")
    return per_view


def view_groups(views: Sequence[jax.Array], per_view: bool) -> list[jax.Array]:
    """Batch-norm batches of same-size views for forward_groups: one per view with
    per_view (the official Barlow Twins / VICReg / MoCo v3 / BYOL code), else one of all."""
    if per_view or len(views) == 1:
        return list(views)
    return [jnp.concatenate(views)]


def forward_groups(
    module: nn.Module, params: Params, batch_stats: Any, groups: Sequence[jax.Array]
) -> tuple[jax.Array, jax.Array, Any]:
    """Train-mode forward of each array of `groups` as its own batch-norm batch, in turn.

    `module` returns (output, features). Returns (outputs and features["pooled"], both
    concatenated over the groups in order, and the batch_stats after the last group). One
    group of concatenated views gives batch statistics over all views; one group per view
    normalises each view in its own batch (the official Barlow Twins / VICReg / MoCo v3 /
    BYOL code forwards the views one at a time); groups of different image sizes
    (multi-crop) must be separate anyway. Running averages move once per group, as torch's.
    """
    outs, pooled = [], []
    for x in groups:
        (out, features), updates = module.apply(
            {"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"]
        )
        batch_stats = updates.get("batch_stats", batch_stats)
        outs.append(out)
        pooled.append(features["pooled"])
    return jnp.concatenate(outs), jnp.concatenate(pooled), batch_stats


def build_encoder(model_cfg: ml_collections.ConfigDict) -> nn.Module:
    """The registered encoder named model_cfg.name, built with the block's other keys."""
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in model_cfg.items()}
    return models.get_model(kwargs.pop("name"), **kwargs)
