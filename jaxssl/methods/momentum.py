"""The shared shape of MoCo v3 and BYOL: an online branch with a predictor and an EMA target.

params = {encoder, projector, predictor, online_probe}; the target branch
(encoder + projector) lives in model_state["target"], so it gets no gradient and
is moved towards the online weights by after_update with a cosine momentum.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.augment import views
from jaxssl.methods import base, ema

TARGET_KEYS = ("encoder", "projector")


class Branch(nn.Module):
    """encoder -> projector (-> predictor); returns (output, encoder features)."""

    encoder: nn.Module
    projector: nn.Module
    predictor: nn.Module | None = None

    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, dict]:
        rep, features = self.encoder(x, train=train)
        out = self.projector(rep, train=train)
        if self.predictor is not None:
            out = self.predictor(out, train=train)
        return out, features


def _subset(tree: dict, keys: tuple[str, ...]) -> dict:
    return {k: tree[k] for k in keys if k in tree}


class MomentumMethod(base.Method):
    """init, online/target forward passes, EMA after_update and encode; subclasses add loss."""

    OPTIONS = {**base.PROBE_OPTIONS, "bn_per_view": base.Option(False, base.BN_PER_VIEW)}

    def __init__(self, config, projector: nn.Module, predictor: nn.Module | None):
        super().__init__(config)
        self.per_view = base.bn_per_view(self.option(config, "bn_per_view"))
        self.encoder = base.build_encoder(config.model)
        self.online = Branch(self.encoder, projector, predictor)
        self.target = Branch(self.encoder, projector)

    def init(self, rng, batch):
        net_rng, probe_rng = jax.random.split(rng)
        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        variables = self.online.init(net_rng, x, train=False)
        params = dict(variables["params"])
        stats = variables.get("batch_stats", {})
        _, features = self.online.apply(variables, x, train=False)
        params |= self.probe.init(probe_rng, features["pooled"], batch)
        # A copy, not an alias: the target starts equal to the online branch.
        target = jax.tree.map(
            jnp.copy,
            {"params": _subset(params, TARGET_KEYS), "batch_stats": _subset(stats, TARGET_KEYS)},
        )
        return params, {"batch_stats": stats, "target": target}

    def view_groups(self, views: list[jax.Array]) -> list[jax.Array]:
        """Batch-norm batches of same-size views (base.view_groups, method.bn_per_view)."""
        return base.view_groups(views, self.per_view)

    def online_forward(self, params, model_state, groups):
        """(predictions, pooled encoder features, updated online batch_stats) in train mode.

        groups: the views, as a list of arrays each forwarded as one batch-norm batch
        (see view_groups and base.forward_groups), or one array; outputs keep their order.
        """
        groups = [groups] if isinstance(groups, jax.Array) else groups
        keys = ("encoder", "projector", "predictor")
        return base.forward_groups(
            self.online, _subset(params, keys), model_state["batch_stats"], groups
        )

    def target_forward(self, model_state, groups):
        """(stop-gradient target projections, updated target state) in train mode."""
        groups = [groups] if isinstance(groups, jax.Array) else groups
        target = model_state["target"]
        out, _, stats = base.forward_groups(
            self.target, target["params"], target["batch_stats"], groups
        )
        new_target = {"params": target["params"], "batch_stats": stats}
        return jax.lax.stop_gradient(out), new_target

    def momentum(self, step: jax.Array) -> jax.Array:
        """Target momentum at `step` (cosine from method.momentum to 1)."""
        return ema.cosine_momentum(self.config.method.momentum, step, self.config.total_steps)

    def after_update(self, params, model_state, step):
        target = model_state["target"]
        new = ema.ema_update(target["params"], _subset(params, TARGET_KEYS), self.momentum(step))
        return {**model_state, "target": {**target, "params": new}}
