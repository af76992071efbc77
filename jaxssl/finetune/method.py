"""Fine-tuning as a Method: the generic train step runs it with a trainable partition.

The objective is the head's cross-entropy (or MSE) plus the l1 / l2 penalties; which params
train is the step's `trainable` mask (frozen leaves are stop_gradient'ed there), and which
BatchNorm statistics may move is this method's `stats_mask`. In adalora mode the loss also
adds the orthogonality regulariser, takes the gradient of the trainable params from its own
forward pass (adalora.value_and_grad_in_forward: no second backward) to update the importance
EMAs in model_state["adalora"], and after_update prunes to the budget of the step.
"""

from typing import Any

import jax
from flax import traverse_util

from jaxssl.finetune import adalora, partition
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
        mask[key] = trains or mode in ("lora", "adalora", "adapter")
    return traverse_util.unflatten_dict(mask)


class FineTune(Method):
    """Encoder (+ LoRA / AdaLoRA / adapters) + head, trained on labels; see FineTuneModel."""

    def __init__(self, model: FineTuneModel, labels: Any, model_state_like: Any):
        super().__init__(model.config)
        self.model = model
        self.encoder = model.encoder
        self.mask = partition.trainable_mask(labels)
        enc_state_like = adalora.encoder_state(model_state_like)
        self.bn_mask = stats_mask(enc_state_like, labels, model.mode)
        self.schedule = None
        if model.mode == "adalora":
            num_matrices = len(adalora.triplets(model_state_like[adalora.KEY]["ipt"]))
            self.schedule = adalora.Schedule.from_config(
                model.ft.adalora, num_matrices, model.config.total_steps
            )

    def init(self, rng, batch):
        return self.model.init(rng, batch)

    def _loss(self, params, model_state, batch, rng):
        aug_rng, dropout_rng = jax.random.split(rng)
        x = self.model.inputs(batch, aug_rng)
        outputs, _, new_state = self.model.apply(
            params, model_state, x, train=True, rng=dropout_rng
        )
        loss, metrics = self.model.objective(outputs, batch)
        reg = self.model.regulariser(params, self.mask)
        orth = self.model.adalora_regulariser(params)
        new_state = {k: new_state.get(k, model_state[k]) for k in self.bn_mask}
        new_state = jax.tree.map(
            lambda n, o, m: n if m else o,
            new_state,
            adalora.encoder_state(model_state),
            self.bn_mask,
        )
        metrics = {**metrics, "task_loss": loss}
        if self.schedule is not None:
            metrics["adalora_orth"] = orth
        return loss + reg + orth, (metrics, new_state)

    def loss(self, params, model_state, batch, rng, step):
        del step
        if self.schedule is None:
            return self._loss(params, model_state, batch, rng)
        # AdaLoRA: the gradient of the trainable leaves comes out of the forward pass.
        leaves, treedef = jax.tree.flatten(params)
        trains = jax.tree.leaves(self.mask)
        diff = [p for p, t in zip(leaves, trains, strict=True) if t]
        frozen = [p for p, t in zip(leaves, trains, strict=True) if not t]

        def fn(diff, rest):
            it_d, it_f = iter(diff), iter(rest[0])
            full = jax.tree.unflatten(treedef, [next(it_d) if t else next(it_f) for t in trains])
            return self._loss(full, *rest[1:])

        loss, (metrics, enc_state), grads = adalora.value_and_grad_in_forward(
            fn, diff, (frozen, model_state, batch, rng)
        )
        it_g = iter(grads)
        grad_tree = jax.tree.unflatten(treedef, [next(it_g) if t else None for t in trains])
        state = model_state[adalora.KEY]
        ac = self.model.ft.adalora
        state = adalora.update_sensitivity(
            params[adalora.KEY], grad_tree[adalora.KEY], state, ac.beta1, ac.beta2
        )
        metrics["adalora_rank"] = sum(  # unmasked triplets in this step's forward pass
            m.sum() for m in jax.tree.leaves(model_state[adalora.KEY]["mask"])
        )
        return loss, (metrics, {**enc_state, adalora.KEY: state})

    def after_update(self, params, model_state, step):
        """AdaLoRA: the pruning of step `step` (a no-op outside its pruning steps)."""
        del params
        if self.schedule is None:
            return model_state
        state = adalora.update_masks(model_state[adalora.KEY], step, self.schedule)
        return {**model_state, adalora.KEY: state}

    def encode(self, params, model_state, batch):
        """Eval-mode encoder features plus the head's outputs under "logits"."""
        outputs, feats, _ = self.model.apply(
            params, model_state, self.model.inputs(batch, None), False
        )
        return {"logits": outputs, **feats}
