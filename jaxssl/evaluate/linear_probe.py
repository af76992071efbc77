"""Linear probe: a linear classifier trained with optax on frozen, row-sharded features.

Features stay where extraction left them (split by rows over the mesh). Each step samples a
batch of indices of real rows (no permutation of all N per step), drawn in the order of the
examples' ids so the probe does not depend on how rows were laid out over processes;
standardisation statistics are masked means over the real rows.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax


def standardize_stats(x: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, std + 1e-6) over the real rows of x [N, D]."""
    w = valid.astype(jnp.float32)[:, None]
    n = jnp.maximum(w.sum(), 1.0)
    mean = (x * w).sum(0, keepdims=True) / n
    var = (jnp.square(x - mean) * w).sum(0, keepdims=True) / n
    return mean, jnp.sqrt(var) + 1e-6


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "batch_size", "count"))
def _fit(features, labels, ids, rng, *, count, num_classes, steps, batch_size, lr, weight_decay):
    valid = labels >= 0
    mean, std = standardize_stats(features, valid)
    # Rows of the real examples, in example order (computed once; padding sorts last).
    real = jnp.argsort(jnp.where(valid, ids, jnp.iinfo(jnp.int32).max))[:count]
    params = {"w": jnp.zeros((features.shape[1], num_classes)), "b": jnp.zeros((num_classes,))}
    tx = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=weight_decay)

    def loss_fn(p, x, y):
        logits = ((x - mean) / std) @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(carry, key):
        p, opt_state = carry
        idx = real[jax.random.randint(key, (batch_size,), 0, count)]
        grads = jax.grad(loss_fn)(p, features[idx], labels[idx])
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(rng, steps))
    return {**params, "mean": mean, "std": std}


def fit(
    features: jax.Array,
    labels: jax.Array,
    *,
    count: int,
    num_classes: int,
    cfg: ml_collections.ConfigDict,
    seed: int = 0,
    ids: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Probe params {w, b, mean, std} from features [N, D] and labels [N] (-1: padding rows).

    ids [N]: each row's example index (default: the row index), fixing the sampling order.
    """
    labels = jnp.asarray(labels, jnp.int32)
    ids = jnp.arange(labels.shape[0], dtype=jnp.int32) if ids is None else ids
    return _fit(
        features,
        labels,
        jnp.asarray(ids, jnp.int32),
        jax.random.PRNGKey(seed),
        count=count,
        num_classes=num_classes,
        steps=cfg.probe_steps,
        batch_size=min(cfg.probe_batch_size, count),
        lr=cfg.probe_lr,
        weight_decay=cfg.probe_weight_decay,
    )


@jax.jit
def logits(params: dict[str, jax.Array], features: jax.Array) -> jax.Array:
    """[N, C] logits of the standardised features."""
    return ((features - params["mean"]) / params["std"]) @ params["w"] + params["b"]
