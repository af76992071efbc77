"""Online linear probe: a linear classifier on stop-gradient encoder features, trained jointly.

As in SimCLR, BYOL and solo-learn, every method adds this head's cross-entropy to
its loss when the batch has labels. Features are stop_gradient'ed, so the encoder
is untouched by labels. Logged as `online_probe_top1` (train batch, augmented view)
and, after training, `online_probe_test_top1` (test split) — never to be confused
with the offline `linear_probe_top1`, which is fit on frozen features afterwards.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxssl.models.heads import LinearHead

KEY = "online_probe"
DEFAULT = True  # method.online_probe when a config does not set it (base.PROBE_OPTIONS)


class OnlineProbe:
    """init/loss helpers a method calls; disabled by method.online_probe=False or no labels."""

    def __init__(self, config: ml_collections.ConfigDict, enabled: bool = False):
        self.config = config
        self.enabled = bool(enabled)

    def num_classes(self) -> int:
        """Classes of the configured dataset (metadata only)."""
        from jaxssl.data import sources  # data imports are heavy: only when a probe exists

        return sources.dataset_info(self.config.dataset).num_classes

    def init(self, rng: jax.Array, features: jax.Array, batch: dict) -> dict[str, Any]:
        """{"online_probe": head params} to merge into params, or {} when disabled."""
        if not self.enabled or "label" not in batch:
            return {}
        head = LinearHead(self.num_classes())
        return {KEY: head.init(rng, jnp.zeros_like(features))["params"]}

    def loss(
        self, params: Any, features: jax.Array, batch: dict
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(cross-entropy to add to the loss, metrics) on stop_gradient(features)."""
        if KEY not in params or "label" not in batch:
            return jnp.zeros((), jnp.float32), {}
        logits = self.apply(params, jax.lax.stop_gradient(features))
        labels = batch["label"].astype(jnp.int32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        top1 = jnp.mean(jnp.argmax(logits, -1) == labels)
        return ce, {"online_probe_loss": ce, "online_probe_top1": top1}

    def apply(self, params: Any, features: jax.Array) -> jax.Array:
        """Logits of the probe head."""
        n = params[KEY]["fc"]["bias"].shape[0]
        return LinearHead(n).apply({"params": params[KEY]}, features.astype(jnp.float32))
