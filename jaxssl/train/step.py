"""The generic pre-training step: method loss -> grads -> optax update, jitted on a mesh."""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxssl import sharding as mesh_lib
from jaxssl.methods.base import Method
from jaxssl.train import xla_cpu
from jaxssl.train.state import TrainState

StepFn = Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]


def init_state(
    method: Method,
    tx: optax.GradientTransformation,
    seed: int,
    sample_batch: dict[str, np.ndarray],
    mesh: Mesh,
    fsdp_min_size: int = 2**16,
) -> TrainState:
    """Creates the state directly on the mesh, never on one host device.

    Leaves are split over the mesh's `fsdp` axis by jaxssl/sharding.py (replicated when fsdp=1).
    """

    def init(rng, batch):
        init_rng, step_rng = jax.random.split(rng)
        params, model_state = method.init(init_rng, batch)
        state = TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state=model_state,
            rng=step_rng,
        )
        # The leaves' shardings from their traced shapes: one trace of the model, not an
        # eval_shape and then jit's own (a warm start's largest Python cost after the step's).
        shardings = mesh_lib.tree_shardings(state, mesh, fsdp_min_size)
        return jax.lax.with_sharding_constraint(state, shardings)

    init = jax.jit(init, compiler_options=xla_cpu.run_once_options())
    return init(jax.random.PRNGKey(seed), sample_batch)


def _all_finite(*values: jax.Array) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in values]))


def stop_frozen(params: Any, trainable: Any) -> Any:
    """stop_gradient on frozen leaves: their backward pass is never built."""
    return jax.tree.map(lambda p, t: p if t else jax.lax.stop_gradient(p), params, trainable)


def keep_frozen(new: Any, old: Any, trainable: Any) -> Any:
    """New values where trainable, the old arrays untouched where frozen (bit-identical)."""
    return jax.tree.map(lambda n, o, t: n if t else o, new, old, trainable)


def make_train_step(
    method: Method,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    skip_nonfinite: bool = False,
    trainable: Any | None = None,
) -> StepFn:
    """Pure step: (state, global batch) -> (new state, metrics); pre-training and fine-tuning.

    trainable: a pytree of Python bools like params (None: every param trains). Frozen
    leaves are stop_gradient'ed before the loss, so no backward pass is built for them, and
    come back as the same arrays. metrics["finite"] is 1.0 when loss and gradients were
    finite. With skip_nonfinite a non-finite step keeps params, optimizer and model state
    unchanged (a select inside the step, no host sync) while the step counter still advances.
    """

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params):
            if trainable is not None:
                params = stop_frozen(params, trainable)
            return method.loss(params, state.model_state, batch, rng, state.step)

        (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if trainable is not None:
            params = keep_frozen(params, state.params, trainable)
        model_state = method.after_update(params, model_state, state.step)
        grad_norm = optax.global_norm(grads)
        finite = _all_finite(loss, grad_norm)
        if skip_nonfinite:
            keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(finite, new, old))
            params = keep(params, state.params)
            opt_state = keep(opt_state, state.opt_state)
            model_state = keep(model_state, state.model_state)
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": grad_norm,
            "param_norm": optax.global_norm(params),
            "update_norm": optax.global_norm(updates),
            "learning_rate": schedule(state.step),
            "finite": finite.astype(jnp.float32),
        }
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, model_state=model_state
        )
        return new_state, metrics

    return train_step


def jit_train_step(step_fn: StepFn, state: Any, mesh: Mesh) -> StepFn:
    """jit over the mesh: state keeps its sharding and is donated, batch split over all devices."""
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    return jax.jit(
        step_fn,
        in_shardings=(state_shardings, mesh_lib.batch_sharding(mesh)),
        out_shardings=(state_shardings, mesh_lib.replicated(mesh)),
        donate_argnums=(0,),
    )
