"""Linear probe: a linear classifier trained with optax on frozen, pre-extracted features."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax


def _standardize(train: np.ndarray, *others: np.ndarray):
    mean = train.mean(axis=0, keepdims=True)
    std = train.std(axis=0, keepdims=True) + 1e-6
    return [(x - mean) / std for x in (train, *others)]


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "batch_size"))
def _fit(features, labels, rng, *, num_classes, steps, batch_size, lr, weight_decay):
    n, d = features.shape
    params = {"w": jnp.zeros((d, num_classes)), "b": jnp.zeros((num_classes,))}
    tx = optax.adamw(optax.cosine_decay_schedule(lr, steps), weight_decay=weight_decay)

    def loss_fn(p, x, y):
        logits = x @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(carry, key):
        p, opt_state = carry
        idx = jax.random.choice(key, n, (batch_size,), replace=batch_size > n)
        grads = jax.grad(loss_fn)(p, features[idx], labels[idx])
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(rng, steps))
    return params


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    *,
    num_classes: int,
    cfg: ml_collections.ConfigDict,
    seed: int = 0,
) -> np.ndarray:
    """Trains on standardised train features; returns test logits [N_test, C]."""
    train_x, test_x = _standardize(
        train_features.astype(np.float32), test_features.astype(np.float32)
    )
    params = _fit(
        jnp.asarray(train_x),
        jnp.asarray(train_labels, jnp.int32),
        jax.random.PRNGKey(seed),
        num_classes=num_classes,
        steps=cfg.probe_steps,
        batch_size=min(cfg.probe_batch_size, len(train_x)),
        lr=cfg.probe_lr,
        weight_decay=cfg.probe_weight_decay,
    )
    return np.asarray(jnp.asarray(test_x) @ params["w"] + params["b"])
