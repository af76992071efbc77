"""MoCo v3 (Chen, Xie & He 2021), with the MoCo v2 queue of negatives as an option.

Queries come from the online encoder + projector + predictor, keys from the
momentum (EMA) encoder + projector; the symmetric InfoNCE uses the other keys of
the global batch as negatives, plus `method.queue_size` past keys when > 0 (a ring
buffer in model_state, written inside the jitted step). `method.bn_per_view=True` normalises
each view in its own batch-norm batch, as the official code (which forwards x1 and x2 apart).
"""

import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.methods.momentum import MomentumMethod
from jaxssl.models.heads import MLPHead


class MoCo(MomentumMethod):
    """Symmetric InfoNCE between online queries and momentum keys of the other view."""

    OPTIONS = {
        **MomentumMethod.OPTIONS,
        "queue_size": base.Option(
            0, "negative keys kept from past batches (MoCo v2); 0: none (v3)"
        ),
    }

    def __init__(self, config):
        m = config.method
        projector = MLPHead(tuple(m.proj_hidden_dims), m.proj_dim, use_bn=True, last_bn=True)
        predictor = MLPHead(tuple(m.pred_hidden_dims), m.proj_dim, use_bn=True, last_bn=False)
        super().__init__(config, projector, predictor)

    def init(self, rng, batch):
        net_rng, queue_rng = jax.random.split(rng)
        params, model_state = super().init(net_rng, batch)
        size = self.option(self.config, "queue_size")
        if size:
            queue = jax.random.normal(queue_rng, (size, self.config.method.proj_dim))
            model_state["queue"] = losses.l2_normalize(queue)
            model_state["queue_ptr"] = jnp.zeros((), jnp.int32)
        return params, model_state

    def loss(self, params, model_state, batch, rng, step):
        del step
        v1, v2 = views.batch_views(rng, batch["image"], self.augment, 2, batch.get(views.HW))
        n = v1.shape[0]
        groups = self.view_groups([v1, v2])
        q, pooled, stats = self.online_forward(params, model_state, groups)
        k, target = self.target_forward(model_state, groups)
        queue = model_state.get("queue")
        temp = self.config.method.temperature
        loss12, acc12 = losses.info_nce(q[:n], k[n:], temp, queue)
        loss21, acc21 = losses.info_nce(q[n:], k[:n], temp, queue)
        probe_loss, metrics = self.probe.loss(params, pooled[:n], batch)
        new_state = {**model_state, "batch_stats": stats, "target": target}
        if queue is not None:
            # Enqueue the keys of view 1 at the pointer (queue_size % batch_size == 0).
            keys = losses.l2_normalize(k[:n])
            ptr = model_state["queue_ptr"]
            new_state["queue"] = jax.lax.dynamic_update_slice(queue, keys, (ptr, 0))
            new_state["queue_ptr"] = (ptr + n) % queue.shape[0]
        metrics |= {"contrastive_acc": (acc12 + acc21) / 2, "ssl_loss": loss12 + loss21}
        return loss12 + loss21 + probe_loss, (metrics, new_state)
