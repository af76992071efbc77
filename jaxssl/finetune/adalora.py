"""AdaLoRA (Zhang et al. 2023): SVD-form updates whose global rank budget follows importance.

Each targeted kernel W (matricised [d1, d2] as in lora.py) becomes W + (alpha / r) P diag(lambda
* mask) Q with P [d1, r], Q [r, d2] Gaussian (std 1/sqrt(d), near-orthonormal) and lambda = 0,
so training starts from the pre-trained function (r = init_rank; alpha / r is LoRA's scale,
peft's lora_alpha / ranknum). The loss adds gamma * sum_k ||P_k^T P_k - I||_F^2 +
||Q_k Q_k^T - I||_F^2 (eq. 4). Importance (eqs. 8-11): per entry I = |theta * dL/dtheta|,
smoothed I_bar = b1 I_bar + (1 - b1) I and uncertainty U_bar = b2 U_bar + (1 - b2) |I - I_bar|,
s = I_bar * U_bar; triplet i of matrix k scores S = s(lambda_i) + mean_j s(P_ji) +
mean_j s(Q_ij). The global budget (eq. 12, the cubic schedule) is b0 = init_rank * K triplets
for t < t_i, then b_T + (b0 - b_T) (1 - (t - t_i) / (T - t_i - t_f))^3, then b_T = target_rank
* K for the last t_f steps; every delta_t steps (from t_i) the top-b(t) triplets by S over ALL
matrices stay and the rest are masked, and the mask is frozen from T - t_f on. The budget is
evaluated at those pruning steps and held in between, so the number of unmasked singular
values equals budget(step) at every step.

Shapes stay static under jit: pruning is a 0/1 mask on lambda, not a smaller matrix, so a
masked singular value is exactly zero in the forward pass. It lives with the importance EMAs in
the train state, model_state["adalora"] = {"ipt", "unc" (trees like the params), "mask"}: the
EMAs are updated in the loss (method.py), the mask in after_update, both inside the jitted
step. Difference from the paper / peft: pruning masks lambda instead of writing 0 into it, so a
triplet revived later restarts from its value at pruning rather than from 0.

The gradient the sensitivity needs is the step's own: `value_and_grad_in_forward` computes
loss and gradient in the forward pass of a jax.custom_vjp whose backward returns that gradient,
so the generic step's value_and_grad costs one forward + backward as usual and the loss can
hand the gradient to the EMAs through model_state.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from jaxssl import losses
from jaxssl.finetune import lora, partition

KEY = "adalora"  # params["adalora"] and model_state["adalora"]


# --- params and the forward pass ------------------------------------------------------------
def init(rng: jax.Array, encoder_params: Any, patterns: Sequence[str], rank: int) -> Any:
    """{path...: {"p": [d1, r], "lam": [r] = 0, "q": [r, d2]}} for every targeted kernel."""
    paths = lora.target_paths(encoder_params, patterns)
    if not paths:
        raise ValueError(f"adalora target_patterns {list(patterns)} match no encoder kernel")
    flat = partition.flat_paths(encoder_params)
    out = {}
    for i, path in enumerate(paths):
        shape = flat[path].shape
        k = lora.input_axes(path, shape)
        d1, d2 = math.prod(shape[:k]), math.prod(shape[k:])
        kp, kq = jax.random.split(jax.random.fold_in(rng, i))
        out[tuple(path.split("/"))] = {
            "p": jax.random.normal(kp, (d1, rank)) / math.sqrt(d1),
            "lam": jnp.zeros((rank,)),
            "q": jax.random.normal(kq, (rank, d2)) / math.sqrt(d2),
        }
    return traverse_util.unflatten_dict(out)


def triplets(adalora_params: Any) -> dict[tuple[str, ...], dict[str, jax.Array]]:
    """{kernel path: {"p", "lam", "q"}} in a fixed (sorted) order."""
    flat = traverse_util.flatten_dict(adalora_params)
    out: dict[tuple[str, ...], dict[str, jax.Array]] = {}
    for key, value in sorted(flat.items()):
        out.setdefault(key[:-1], {})[key[-1]] = value
    return out


def delta(t: dict[str, jax.Array], mask: jax.Array, scale: float) -> jax.Array:
    """scale * P diag(lambda * mask) Q, [d1, d2]."""
    return scale * (t["p"] * (t["lam"] * mask)[None, :]) @ t["q"]


def merge(encoder_params: Any, adalora_params: Any, masks: Any, alpha: float, rank: int) -> Any:
    """Encoder params with every targeted kernel replaced by W + (alpha / r) P diag(lam m) Q."""
    flat = traverse_util.flatten_dict(encoder_params)
    mask_flat = traverse_util.flatten_dict(masks)
    merged = dict(flat)
    for key, t in triplets(adalora_params).items():
        w = flat[key]
        d = delta(t, mask_flat[key], alpha / rank)
        merged[key] = (w + d.reshape(w.shape)).astype(w.dtype)
    return traverse_util.unflatten_dict(merged)


def regulariser(adalora_params: Any) -> jax.Array:
    """sum_k ||P_k^T P_k - I||_F^2 + ||Q_k Q_k^T - I||_F^2 over the adapted matrices."""
    terms = [losses.orthogonality(t["p"], t["q"]) for t in triplets(adalora_params).values()]
    return sum(terms, jnp.zeros((), jnp.float32))


# --- importance -------------------------------------------------------------------------------
def init_state(adalora_params: Any) -> dict[str, Any]:
    """Zero EMAs and an all-ones mask (b0 = every triplet) for model_state["adalora"]."""
    masks = {k: jnp.ones_like(t["lam"]) for k, t in triplets(adalora_params).items()}
    return {
        "ipt": jax.tree.map(jnp.zeros_like, adalora_params),
        "unc": jax.tree.map(jnp.zeros_like, adalora_params),
        "mask": traverse_util.unflatten_dict(masks),
    }


def update_sensitivity(
    params: Any, grads: Any, state: dict[str, Any], beta1: float, beta2: float
) -> dict[str, Any]:
    """Eqs. 8-10: I = |theta g|, I_bar <- b1 I_bar + (1 - b1) I, U_bar <- b2 U_bar + (1 - b2)
    |I - I_bar| (with the new I_bar), for every entry of P, lambda and Q."""
    sens = jax.tree.map(lambda p, g: jnp.abs(p * g), params, grads)
    ipt = jax.tree.map(lambda old, i: beta1 * old + (1 - beta1) * i, state["ipt"], sens)
    unc = jax.tree.map(
        lambda old, i, bar: beta2 * old + (1 - beta2) * jnp.abs(i - bar), state["unc"], sens, ipt
    )
    return {**state, "ipt": ipt, "unc": unc}


def scores(state: dict[str, Any]) -> dict[tuple[str, ...], jax.Array]:
    """Eq. 11 per matrix: S_i = s(lambda_i) + mean_j s(P_ji) + mean_j s(Q_ij), s = I_bar U_bar."""
    s = triplets(jax.tree.map(lambda a, b: a * b, state["ipt"], state["unc"]))
    return {k: t["lam"] + t["p"].mean(0) + t["q"].mean(1) for k, t in s.items()}


# --- the budget -------------------------------------------------------------------------------
class Schedule:
    """The cubic budget of eq. 12, evaluated at the pruning steps (every delta_t from t_i)."""

    def __init__(
        self, b0: int, b_t: int, t_init: int, t_final: int, total_steps: int, delta_t: int
    ):
        self.b0, self.b_t, self.t_init, self.delta_t = b0, b_t, t_init, delta_t
        # From here on the budget is b_T and the mask is frozen (the paper's final t_f steps).
        self.t_end = max(t_init, total_steps - t_final)
        span = total_steps - t_init - t_final
        self.table = [
            int(b_t + (b0 - b_t) * (1 - k * delta_t / span) ** 3)
            for k in range(math.ceil(span / delta_t))
        ] or [b_t]  # a run too short for the cubic phase goes from b0 to b_T at t_end

    @classmethod
    def from_config(cls, cfg: ml_collections.ConfigDict, num_matrices: int, total_steps: int):
        """From finetune.adalora (fractions of total_steps for t_i and t_f)."""
        return cls(
            b0=cfg.init_rank * num_matrices,
            b_t=cfg.target_rank * num_matrices,
            t_init=round(cfg.warmup_fraction * total_steps),
            t_final=round(cfg.final_fraction * total_steps),
            total_steps=total_steps,
            delta_t=cfg.delta_t,
        )

    def budget(self, step: Any) -> Any:
        """Unmasked triplets after the update of `step` (numpy or jax int)."""
        xp = jnp if isinstance(step, jax.Array) else np
        k = xp.clip((step - self.t_init) // self.delta_t, 0, len(self.table) - 1)
        middle = xp.asarray(self.table)[k]
        return xp.where(step < self.t_init, self.b0, xp.where(step >= self.t_end, self.b_t, middle))

    def prunes(self, step: Any) -> Any:
        """Whether the mask is recomputed after the update of `step`."""
        on_grid = (step - self.t_init) % self.delta_t == 0
        return ((step >= self.t_init) & (step < self.t_end) & on_grid) | (step == self.t_end)


def encoder_state(model_state: dict[str, Any]) -> dict[str, Any]:
    """The encoder collections of a fine-tune model_state (without model_state[KEY])."""
    return {k: v for k, v in model_state.items() if k != KEY}


def update_masks(state: dict[str, Any], step: jax.Array, schedule: Schedule) -> dict[str, Any]:
    """On pruning steps: keep the global top-budget(step) triplets by score, mask the rest.

    A lax.cond: the scores and the two sorts run only on the 1 step in delta_t that prunes.
    """

    def prune(state: dict[str, Any]) -> dict[str, Any]:
        by_matrix = scores(state)
        keys = list(by_matrix)
        flat = jnp.concatenate([by_matrix[k] for k in keys])
        rank = jnp.argsort(jnp.argsort(-flat, stable=True), stable=True)  # 0 = most important
        keep = (rank < schedule.budget(step)).astype(jnp.float32)
        old = traverse_util.flatten_dict(state["mask"])
        new, start = {}, 0
        for k in keys:
            n = by_matrix[k].shape[0]
            new[k] = keep[start : start + n].astype(old[k].dtype)
            start += n
        return {**state, "mask": traverse_util.unflatten_dict(new)}

    return jax.lax.cond(schedule.prunes(step), prune, lambda state: state, state)


def ranks(state: dict[str, Any]) -> dict[str, int]:
    """{kernel path: unmasked triplets} (host ints) for summary.json."""
    flat = traverse_util.flatten_dict(jax.device_get(state["mask"]))
    return {"/".join(k): int(np.asarray(v).sum()) for k, v in sorted(flat.items())}


# --- the gradient inside the loss -------------------------------------------------------------
def value_and_grad_in_forward(
    fn: Callable[[Any, Any], tuple[jax.Array, Any]], diff: Any, rest: Any
) -> tuple[jax.Array, Any, Any]:
    """(loss, aux, d loss / d diff) of fn(diff, rest) -> (loss, aux), computed once.

    The gradient is computed in the forward pass of a custom_vjp whose backward returns it
    (times the incoming cotangent), so an outer jax.grad of the loss w.r.t. diff costs no
    second backward pass and equals the returned gradient; rest gets no gradient.
    """

    @jax.custom_vjp
    def f(diff, rest):
        (loss, aux), grads = jax.value_and_grad(fn, has_aux=True)(diff, rest)
        return loss, (aux, grads)

    def fwd(diff, rest):
        out = f(diff, rest)
        return out, out[1][1]

    def bwd(grads, cotangents):
        ct = cotangents[0]
        return jax.tree.map(lambda g: ct * g, grads), None

    f.defvjp(fwd, bwd)
    loss, (aux, grads) = f(diff, rest)
    return loss, aux, jax.lax.stop_gradient(grads)
