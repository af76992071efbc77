"""Self-supervised losses as plain functions of arrays."""

import jax
import jax.numpy as jnp
import optax


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


def info_nce(q: jax.Array, k: jax.Array, temperature: float, queue: jax.Array | None = None):
    """MoCo InfoNCE: q[i] must pick k[i] among the batch keys (and queue); (loss, accuracy).

    Keys are constants (the caller stops their gradient). The loss is scaled by
    2 * temperature as in MoCo v3. The dense product over the global batch gives
    every device's keys as negatives with no collective.
    """
    q = l2_normalize(q.astype(jnp.float32))
    k = l2_normalize(k.astype(jnp.float32))
    logits = q @ k.T / temperature
    if queue is not None:
        logits = jnp.concatenate([logits, q @ queue.astype(jnp.float32).T / temperature], axis=1)
    labels = jnp.arange(q.shape[0])
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return 2.0 * temperature * loss, accuracy


def normalized_mse(p: jax.Array, z: jax.Array) -> jax.Array:
    """BYOL regression loss ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), averaged over the batch."""
    p = l2_normalize(p.astype(jnp.float32))
    z = l2_normalize(z.astype(jnp.float32))
    return jnp.mean(jnp.sum(jnp.square(p - z), axis=-1))


def masked_mse(pred: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """MAE loss: per-patch MSE [B, L] averaged over patches where mask == 1 only."""
    per_patch = jnp.mean(jnp.square(pred.astype(jnp.float32) - target), axis=-1)
    mask = mask.astype(jnp.float32)
    return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over the latent axis."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


def reconstruction_error(output: jax.Array, target: jax.Array, kind: str) -> jax.Array:
    """Per-example reconstruction error summed over pixels.

    kind="mse": squared error of output (pixels) to target; kind="bce": Bernoulli
    negative log-likelihood of target in [0, 1] under sigmoid(output) (logits).
    """
    output = output.astype(jnp.float32).reshape(output.shape[0], -1)
    target = target.astype(jnp.float32).reshape(target.shape[0], -1)
    if kind == "mse":
        return jnp.sum(jnp.square(output - target), axis=-1)
    if kind == "bce":
        return jnp.sum(optax.sigmoid_binary_cross_entropy(output, target), axis=-1)
    raise ValueError(f"reconstruction kind {kind!r}; valid: 'mse', 'bce'")
