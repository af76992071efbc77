"""The fine-tune step: value_and_grad over trainable params only, optax multi_transform update."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from jax.sharding import Mesh

from jaxssl.finetune import partition
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import mesh as mesh_lib
from jaxssl.train.state import TrainState
from jaxssl.train.step import StepFn


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


def init_state(
    model: FineTuneModel,
    seed: int,
    sample_batch: dict[str, np.ndarray],
    mesh: Mesh,
) -> tuple[Any, Any]:
    """(params, model_state) initialised directly on the mesh, replicated."""
    rng = jax.random.PRNGKey(seed)
    abstract = jax.eval_shape(model.init, rng, sample_batch)
    shardings = mesh_lib.tree_replicated(abstract, mesh)
    return jax.jit(model.init, out_shardings=shardings)(rng, sample_batch)


def make_state(
    params: Any, model_state: Any, tx: optax.GradientTransformation, seed: int, mesh: Mesh
) -> TrainState:
    """TrainState on the mesh around given params (fresh optimizer state, step 0)."""

    def build(params, model_state):
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state=model_state,
            rng=jax.random.fold_in(jax.random.PRNGKey(seed), 1),
        )

    abstract = jax.eval_shape(build, params, model_state)
    return jax.jit(build, out_shardings=mesh_lib.tree_replicated(abstract, mesh))(
        params, model_state
    )


def make_finetune_step(
    model: FineTuneModel,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    labels: Any,
    model_state_like: Any,
) -> StepFn:
    """Pure step: frozen params get stop_gradient (no backward) and come back untouched."""
    mask = partition.trainable_mask(labels)
    bn_mask = stats_mask(model_state_like, labels, model.mode)

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        rng = jax.random.fold_in(state.rng, state.step)
        aug_rng, dropout_rng = jax.random.split(rng)
        x = model.inputs(batch, aug_rng)

        def loss_fn(params):
            params = partition.stop_frozen(params, mask)
            outputs, _, model_state = model.apply(
                params, state.model_state, x, train=True, rng=dropout_rng
            )
            loss, metrics = model.objective(outputs, batch)
            reg = model.regulariser(params, mask)
            return loss + reg, ({**metrics, "task_loss": loss}, model_state)

        (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = partition.keep_frozen(
            optax.apply_updates(state.params, updates), state.params, mask
        )
        model_state = partition.keep_frozen(model_state, state.model_state, bn_mask)
        grad_norm = optax.global_norm(grads)
        metrics = {
            **metrics,
            "loss": loss,
            # Computed here, inside jit: the loop reads it instead of dispatching its own op.
            "finite": (jnp.isfinite(loss) & jnp.isfinite(grad_norm)).astype(jnp.float32),
            "grad_norm": grad_norm,
            "param_norm": optax.global_norm(params),
            "update_norm": optax.global_norm(updates),
            "learning_rate": schedule(state.step),
        }
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, model_state=model_state
        )
        return new_state, metrics

    return train_step
