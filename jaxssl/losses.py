"""Self-supervised losses as plain functions of arrays."""

import jax
import jax.numpy as jnp


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    """Scales x to unit L2 norm along axis (zero vectors stay zero)."""
    norm_sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(norm_sq, eps))


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float) -> tuple[jax.Array, jax.Array]:
    """NT-Xent (SimCLR) loss over the whole batch; returns (loss, positive-pair accuracy).

    z1[i] and z2[i] are the two views of example i. Each of the 2N embeddings is
    classified against the other 2N-1: its partner is the positive, the 2N-2
    others are negatives. Under jit over a sharded global batch this dense product
    spans every device, so negatives come from the global batch with no collective.
    """
    n = z1.shape[0]
    z = l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))
    logits = z @ z.T / temperature
    # Exclude self-similarity; a large finite value keeps gradients NaN-free.
    logits = jnp.where(jnp.eye(2 * n, dtype=bool), -1e9, logits)
    positive = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(log_probs, positive[:, None], axis=-1))
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == positive)
    return loss, accuracy
