"""SimCLR (Chen et al. 2020): two augmented views, projection MLP, NT-Xent."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.models.heads import MLPHead


class SimCLRNet(nn.Module):
    """Encoder followed by the projection head; params split as encoder/ head/."""

    encoder: nn.Module
    head: nn.Module

    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, dict]:
        rep, features = self.encoder(x, train=train)
        return self.head(rep, train=train), features


class SimCLR(base.Method):
    """NT-Xent over the global batch: each view's negatives are the other 2N-2 views."""

    OPTIONS = {
        **base.PROBE_OPTIONS,
        "proj_last_bn": base.Option(True, "batch norm on the projection's output (SimCLR v2)"),
    }

    def __init__(self, config):
        super().__init__(config)
        m = config.method
        if not m.temperature > 0:
            raise ValueError(f"method.temperature={m.temperature} must be > 0, e.g. 0.1 to 0.5")
        self.encoder = base.build_encoder(config.model)
        self.net = SimCLRNet(
            encoder=self.encoder,
            head=MLPHead(
                hidden_dims=tuple(m.proj_hidden_dims),
                out_dim=m.proj_dim,
                use_bn=True,
                last_bn=self.option(config, "proj_last_bn"),
            ),
        )

    def init(self, rng, batch):
        x = views.eval_view(batch["image"], self.augment, batch.get(views.HW))
        net_rng, probe_rng = jax.random.split(rng)
        variables = self.net.init(net_rng, x, train=False)
        _, features = self.net.apply(variables, x, train=False)
        params = dict(variables["params"]) | self.probe.init(probe_rng, features["pooled"], batch)
        return params, {"batch_stats": variables["batch_stats"]}

    def loss(self, params, model_state, batch, rng, step):
        del step
        v1, v2 = views.batch_views(rng, batch["image"], self.augment, 2, batch.get(views.HW))
        # One forward pass over both views: batch-norm statistics span all 2N views.
        (z, features), updates = self.net.apply(
            {"params": {k: params[k] for k in ("encoder", "head")}, **model_state},
            jnp.concatenate([v1, v2]),
            train=True,
            mutable=["batch_stats"],
        )
        n = v1.shape[0]
        loss, acc = losses.nt_xent(z[:n], z[n:], self.config.method.temperature)
        probe_loss, metrics = self.probe.loss(params, features["pooled"][:n], batch)
        metrics |= {"contrastive_acc": acc, "ssl_loss": loss}
        return loss + probe_loss, (metrics, {**model_state, **updates})
