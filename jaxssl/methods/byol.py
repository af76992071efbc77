"""BYOL (Grill et al. 2020): predict the EMA target's projection of the other view.

View 2 uses the recipe with `method.view2` overrides (the paper's asymmetric
augmentation: blur 0.1, solarize 0.2), made from a copy of the augment config.
`method.bn_per_view=True` normalises each view in its own batch-norm batch (the official
code forwards the two views one at a time); the default normalises both views together.
"""

import jax

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.methods.momentum import MomentumMethod
from jaxssl.models.heads import MLPHead


class BYOL(MomentumMethod):
    """Symmetric normalised MSE between online predictions and target projections."""

    OPTIONS = {
        **MomentumMethod.OPTIONS,
        "view2": base.Option(
            {}, "augment keys the second view overrides (BYOL: blur 0.1, solarize 0.2)"
        ),
    }

    def __init__(self, config):
        m = config.method
        projector = MLPHead(tuple(m.proj_hidden_dims), m.proj_dim, use_bn=True, last_bn=False)
        predictor = MLPHead(tuple(m.pred_hidden_dims), m.proj_dim, use_bn=True, last_bn=False)
        super().__init__(config, projector, predictor)
        self.augment2 = config.augment.copy_and_resolve_references()
        self.augment2.update(dict(self.option(config, "view2")))

    def loss(self, params, model_state, batch, rng, step):
        k1, k2 = jax.random.split(rng)
        (v1,) = views.batch_views(k1, batch["image"], self.augment, 1, batch.get(views.HW))
        (v2,) = views.batch_views(k2, batch["image"], self.augment2, 1, batch.get(views.HW))
        n = v1.shape[0]
        groups = self.view_groups([v1, v2])
        p, pooled, stats = self.online_forward(params, model_state, groups)
        z, target = self.target_forward(model_state, groups)
        ssl = losses.normalized_mse(p[:n], z[n:]) + losses.normalized_mse(p[n:], z[:n])
        probe_loss, metrics = self.probe.loss(params, pooled[:n], batch)
        metrics |= {"ssl_loss": ssl, "momentum": self.momentum(step)}
        new_state = {**model_state, "batch_stats": stats, "target": target}
        return ssl + probe_loss, (metrics, new_state)
