"""Barlow Twins (Zbontar et al. 2021): the cross-correlation of two views' embeddings -> identity.

encoder -> projector (Linear-BN-ReLU blocks, then Linear: the paper's 8192-8192-8192) on two
views; each embedding dimension is standardised over the global batch and the cross-correlation
C [D, D] is pushed to the identity (losses.barlow_twins). Under jit over the sharded global
batch, C sums over every device's examples with no hand-written all-reduce. As the official
code, each view is forwarded on its own (`method.bn_per_view=True`, one batch-norm batch per
view); `method.view2` overrides the recipe of view 2 (BYOL's asymmetric blur / solarize).
VICReg (vicreg.py) shares this class and swaps `objective`.
"""

import jax

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.methods.momentum import Branch
from jaxssl.models.heads import MLPHead


class BarlowTwins(base.Method):
    """Two views, a shared encoder + projector, a batch-statistics objective of (z1, z2)."""

    OPTIONS = {
        **base.PROBE_OPTIONS,
        "bn_per_view": base.Option(True, base.BN_PER_VIEW),
        "view2": base.Option({}, "augment keys the second view overrides (asymmetric views)"),
        "lambd": base.Option(0.0051, "weight of the off-diagonal (redundancy) terms"),
        "scale_loss": base.Option(1.0, "factor on the whole loss"),
    }

    def __init__(self, config):
        super().__init__(config)
        m = config.method
        self.check_method(m)
        self.per_view = base.bn_per_view(self.option(config, "bn_per_view"))
        self.encoder = base.build_encoder(config.model)
        projector = MLPHead(tuple(m.proj_hidden_dims), m.proj_dim, use_bn=True, last_bn=False)
        self.net = Branch(self.encoder, projector)
        self.augment2 = views.with_overrides(config.augment, self.option(config, "view2"))

    def check_method(self, m) -> None:
        """ValueError for a method.* key that cannot work."""
        lambd, scale = self.option(self.config, "lambd"), self.option(self.config, "scale_loss")
        if not lambd >= 0:
            raise ValueError(f"method.lambd={lambd} must be >= 0 (the paper: 5.1e-3)")
        if not scale > 0:
            raise ValueError(f"method.scale_loss={scale} must be > 0 (1, or 1/32 early)")

    def objective(self, z1: jax.Array, z2: jax.Array) -> tuple[jax.Array, dict]:
        """(loss, metrics) of the two views' embeddings [N, D] over the global batch."""
        loss, on_diag, off_diag = losses.barlow_twins(
            z1, z2, self.option(self.config, "lambd"), self.option(self.config, "scale_loss")
        )
        return loss, {"on_diag": on_diag, "off_diag": off_diag}

    def init(self, rng, batch):
        net_rng, probe_rng = jax.random.split(rng)
        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        variables = self.net.init(net_rng, x, train=False)
        _, features = self.net.apply(variables, x, train=False)
        params = dict(variables["params"]) | self.probe.init(probe_rng, features["pooled"], batch)
        return params, {"batch_stats": variables.get("batch_stats", {})}

    def loss(self, params, model_state, batch, rng, step):
        del step
        k1, k2 = jax.random.split(rng)
        (v1,) = views.batch_views(k1, batch["image"], self.augment, 1, batch.get(views.HW))
        (v2,) = views.batch_views(k2, batch["image"], self.augment2, 1, batch.get(views.HW))
        n = v1.shape[0]
        groups = base.view_groups([v1, v2], self.per_view)
        net_params = {k: params[k] for k in ("encoder", "projector")}
        z, pooled, stats = base.forward_groups(
            self.net, net_params, model_state["batch_stats"], groups
        )
        ssl, metrics = self.objective(z[:n], z[n:])
        probe_loss, probe_metrics = self.probe.loss(params, pooled[:n], batch)
        metrics |= probe_metrics | {"ssl_loss": ssl}
        return ssl + probe_loss, (metrics, {**model_state, "batch_stats": stats})
