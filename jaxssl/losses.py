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


def info_nce_rows(
    q: jax.Array, k: jax.Array, temperature: float, valid: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Per-row InfoNCE without MoCo's scaling: (-log p(k[i] | q[i]), 1.0 where k[i] ranks first).

    The candidates of q[i] are the valid rows of k (SimCSE eq. 1: sim(q_i, k_j) / temperature,
    cosine similarity). valid [N] bool drops padding rows as candidates; their own outputs are
    meaningless and must be weighted out by the caller. With every row valid,
    nll.mean() == info_nce(q, k, temperature)[0] / (2 * temperature).
    """
    q = l2_normalize(q.astype(jnp.float32))
    k = l2_normalize(k.astype(jnp.float32))
    logits = q @ k.T / temperature
    if valid is not None:
        logits = jnp.where(valid[None, :], logits, -1e9)
    labels = jnp.arange(q.shape[0])
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
    return nll, (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def orthogonality(p: jax.Array, q: jax.Array) -> jax.Array:
    """AdaLoRA's regulariser ||P^T P - I||_F^2 + ||Q Q^T - I||_F^2 (P [d1, r], Q [r, d2])."""
    eye = jnp.eye(p.shape[1], dtype=jnp.float32)
    p, q = p.astype(jnp.float32), q.astype(jnp.float32)
    return jnp.sum(jnp.square(p.T @ p - eye)) + jnp.sum(jnp.square(q @ q.T - eye))


def barlow_twins(
    z1: jax.Array, z2: jax.Array, lambd: float, scale: float = 1.0, eps: float = 1e-5
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Barlow Twins (Zbontar et al. 2021, algorithm 1): (loss, on-diagonal, off-diagonal term).

    Each embedding dimension is standardised over the batch (BatchNorm without affine,
    biased variance, eps as torch's BatchNorm1d); C = z1n^T z2n / N is the cross-correlation
    [D, D]; loss = scale * (sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2). `scale` is the
    official repo's early --scale-loss (1/32 with lambd 3.9e-3; its final version: 1, 5.1e-3).
    Under jit over the sharded global batch the sums over N span every device.
    """
    z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)

    def standardize(z):
        mean = jnp.mean(z, axis=0, keepdims=True)
        var = jnp.mean(jnp.square(z - mean), axis=0, keepdims=True)
        return (z - mean) * jax.lax.rsqrt(var + eps)

    c = standardize(z1).T @ standardize(z2) / z1.shape[0]
    diag = jnp.diagonal(c)
    on_diag = jnp.sum(jnp.square(1.0 - diag))
    off_diag = jnp.sum(jnp.square(c)) - jnp.sum(jnp.square(diag))
    return scale * (on_diag + lambd * off_diag), on_diag, off_diag


def vicreg(
    z1: jax.Array,
    z2: jax.Array,
    sim_weight: float = 25.0,
    var_weight: float = 25.0,
    cov_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """VICReg (Bardes et al. 2022, algorithm 1): (loss, {invariance, variance, covariance}).

    invariance = MSE(z1, z2) (mean over batch and dimensions); variance = mean_j relu(gamma -
    sqrt(Var(z_j) + eps)) averaged over the two branches; covariance = sum of squared
    off-diagonal entries of each branch's covariance (unbiased, N - 1) divided by D, summed
    over the branches. Batch statistics span the whole (global) batch.
    """
    z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)
    n, d = z1.shape
    invariance = jnp.mean(jnp.square(z1 - z2))

    def var_cov(z):
        z = z - jnp.mean(z, axis=0, keepdims=True)
        std = jnp.sqrt(jnp.sum(jnp.square(z), axis=0) / (n - 1) + eps)
        cov = z.T @ z / (n - 1)
        off = jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(jnp.diagonal(cov)))
        return jnp.mean(jax.nn.relu(gamma - std)), off / d

    (v1, c1), (v2, c2) = var_cov(z1), var_cov(z2)
    variance, covariance = (v1 + v2) / 2.0, c1 + c2
    loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}


def dino(
    student: jax.Array,
    teacher: jax.Array,
    center: jax.Array,
    student_temp: float,
    teacher_temp: jax.Array | float,
) -> jax.Array:
    """DINO (Caron et al. 2021, algorithm 1) over all pairs of different views.

    student [V, B, K] logits of every view (the first G are the global ones), teacher [G, B, K]
    logits of the global views (constants: the caller stops their gradient), center [K].
    Targets softmax((t - center) / teacher_temp), predictions log_softmax(s / student_temp);
    the cross-entropy is averaged over the batch, then over the G * V - G pairs (i, v), v != i.
    """
    g, v = teacher.shape[0], student.shape[0]
    targets = jax.nn.softmax((teacher.astype(jnp.float32) - center) / teacher_temp, axis=-1)
    log_probs = jax.nn.log_softmax(student.astype(jnp.float32) / student_temp, axis=-1)
    # ce[i, j] = mean_b sum_k -targets[i, b, k] * log_probs[j, b, k]
    ce = -jnp.einsum("ibk,jbk->ij", targets, log_probs) / student.shape[1]
    pairs = 1.0 - jnp.eye(g, v, dtype=jnp.float32)
    return jnp.sum(ce * pairs) / jnp.sum(pairs)


def ijepa(pred: jax.Array, target: jax.Array, kind: str = "smooth_l1") -> jax.Array:
    """I-JEPA (Assran et al. 2023): predicted patch representations vs the target encoder's.

    Targets are layer-normed over the feature axis without affine (the official code's
    F.layer_norm, eps 1e-5); the loss is the mean over every element of smooth L1 with beta 1
    (the official code; optax.huber_loss with delta 1 is the same function) or, with
    kind="mse", of the squared error (the paper's L2).
    """
    target = target.astype(jnp.float32)
    mean = jnp.mean(target, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(target - mean), axis=-1, keepdims=True)
    target = (target - mean) * jax.lax.rsqrt(var + 1e-5)
    pred = pred.astype(jnp.float32)
    if kind == "smooth_l1":
        return jnp.mean(optax.huber_loss(pred, target, delta=1.0))
    if kind == "mse":
        return jnp.mean(jnp.square(pred - target))
    raise ValueError(f"I-JEPA loss kind {kind!r}; valid: 'smooth_l1', 'mse'")
