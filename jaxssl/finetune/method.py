"""Fine-tuning as a Method: the generic train step runs it with a trainable partition.

The objective is the head's cross-entropy (or MSE) plus the l1 / l2 penalties; which params
train is the step's `trainable` mask (frozen leaves are stop_gradient'ed there), and which
BatchNorm statistics may move is this method's `stats_mask`.
"""

from typing import Any

import jax
from flax import traverse_util

from jaxssl.finetune import partition
from jaxssl.finetune.model import FineTuneModel
from jaxssl.methods.base import Method


def stats_mask(model_state: Any, labels: Any, mode: str) -> Any:
    """True where a BatchNorm's running stats may change: its module trains (or LoRA/adapter).

    LoRA and adapters change the activations every BatchNorm sees, so its statistics are
    re-estimated while every base param stays frozen.
    """
    flat_labels = partition.flat_paths(labels)
    mask = {}
    for key in traverse_util.flatten_dict(model_state):
        module = "/".join(key[1:-1])  # drop the collection and the stat name
        trains = any(
            p.startswith(module + "/") and lab != partition.FROZEN for p, lab in flat_labels.items()
        )
        mask[key] = trains or mode in ("lora", "adapter")
    return traverse_util.unflatten_dict(mask)


class FineTune(Method):
    """Encoder (+ LoRA / adapters) + head, trained on labels; see FineTuneModel."""

    def __init__(self, model: FineTuneModel, labels: Any, model_state_like: Any):
        super().__init__(model.config)
        self.model = model
        self.encoder = model.encoder
        self.mask = partition.trainable_mask(labels)
        self.bn_mask = stats_mask(model_state_like, labels, model.mode)

    def init(self, rng, batch):
        return self.model.init(rng, batch)

    def loss(self, params, model_state, batch, rng, step):
        del step
        aug_rng, dropout_rng = jax.random.split(rng)
        x = self.model.inputs(batch, aug_rng)
        outputs, _, new_state = self.model.apply(
            params, model_state, x, train=True, rng=dropout_rng
        )
        loss, metrics = self.model.objective(outputs, batch)
        reg = self.model.regulariser(params, self.mask)
        new_state = jax.tree.map(
            lambda n, o, m: n if m else o, new_state, model_state, self.bn_mask
        )
        return loss + reg, ({**metrics, "task_loss": loss}, new_state)

    def encode(self, params, model_state, batch):
        """Eval-mode encoder features plus the head's outputs under "logits"."""
        outputs, feats, _ = self.model.apply(
            params, model_state, self.model.inputs(batch, None), False
        )
        return {"logits": outputs, **feats}
