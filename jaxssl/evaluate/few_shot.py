"""Few-shot linear evaluation: closed-form ridge regression on n examples per class.

As big_vision's fewshot_lsr evaluator: the n-shot features are standardised with their own
mean and std, a constant feature BIAS (large, so the bias is almost unregularised) is appended,
targets are one-hot in {-1, 1}, W = (X^T X + l2 I)^-1 X^T Y and a test example's class is the
argmax of its scores. Unlike big_vision's single fixed l2, l2 is picked from a small grid
(eval.fewshot_l2_grid) by top-1 on up to eval.fewshot_val_per_class held-out examples per
class of the *train* split (never the test split). A shot count is evaluated only if every
class has more train examples than shots. The result is the mean test top-1 over
eval.fewshot_seeds draws of the n-shot set.

Only the few selected rows come to the host (float64 numpy: at most shots x classes rows);
test features stay sharded on the mesh and are scored by one matmul with the fitted head.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxssl.evaluate.features import host

BIAS = 100.0  # big_vision's BIAS_CONSTANT


def check_config(ev: ml_collections.ConfigDict) -> None:
    """ValueError for eval.fewshot_* values that cannot work (before anything runs)."""
    shots = tuple(ev.get("fewshot_shots", ()))
    if not shots:
        return
    if any(not isinstance(n, int) or n < 1 for n in shots):
        raise ValueError(f"eval.fewshot_shots={shots} must be positive integers, e.g. (1, 5)")
    grid = tuple(ev.fewshot_l2_grid)
    if not grid or not all(isinstance(g, (int, float)) and g > 0 for g in grid):
        raise ValueError(f"eval.fewshot_l2_grid={ev.fewshot_l2_grid} must be values > 0")
    for key in ("fewshot_seeds", "fewshot_val_per_class"):
        if not isinstance(ev[key], int) or ev[key] < 1:
            raise ValueError(f"eval.{key}={ev[key]!r} must be an integer >= 1")


def ridge_heads(
    x: np.ndarray, y: np.ndarray, num_classes: int, l2_grid: tuple[float, ...]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One affine head (W [D, C], b [C]) per l2: ridge of {-1, 1} one-hot targets on x [N, D].

    The standardisation and the bias feature are folded into W and b, so that
    scores = x_raw @ W + b. One eigendecomposition serves the whole grid (as big_vision).
    """
    x = np.asarray(x, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-5
    z = np.concatenate([(x - mean) / std, np.full((len(x), 1), BIAS)], axis=1)
    t = 2.0 * np.eye(num_classes)[y] - 1.0
    # N >= D: (Z^T Z + l2 I)^-1 Z^T T; N < D: Z^T (Z Z^T + l2 I)^-1 T (same W, smaller solve).
    if len(z) >= z.shape[1]:
        eigs, q = np.linalg.eigh(z.T @ z)
        lhs, rhs = q, q.T @ (z.T @ t)
    else:
        eigs, q = np.linalg.eigh(z @ z.T)
        lhs, rhs = z.T @ q, q.T @ t
    heads = []
    for l2 in l2_grid:
        w = (lhs / (eigs + l2)) @ rhs  # [D + 1, C]
        heads.append((w[:-1] / std[:, None], BIAS * w[-1] - (mean / std) @ w[:-1]))
    return heads


def draw(
    labels: np.ndarray, ids: np.ndarray, num_classes: int, n: int, extra: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n rows per class, up to `extra` further rows per class) of real rows, at random.

    The order is a permutation of example ids, so the draw does not depend on the layout of
    rows over processes or devices.
    """
    priority = np.random.default_rng(seed).permutation(max(int(ids.max()) + 1, 1))
    shots, held = [], []
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)
        rows = rows[np.argsort(priority[ids[rows]])]
        shots.append(rows[:n])
        held.append(rows[n : n + extra])
    return np.concatenate(shots), np.concatenate(held)


@jax.jit
def _take(x: jax.Array, rows: jax.Array) -> jax.Array:
    return x[rows]


@jax.jit
def _correct(x: jax.Array, labels: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """Number of real rows (label >= 0) whose argmax score is their label."""
    pred = jnp.argmax(x @ w + b, axis=-1)
    return jnp.sum((pred == labels) & (labels >= 0))


def evaluate(
    train_x: jax.Array,
    train_labels: jax.Array,
    train_ids: jax.Array,
    test_x: jax.Array,
    test_labels: jax.Array,
    *,
    num_classes: int,
    ev: ml_collections.ConfigDict,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """({"fewshot_{n}shot_top1": mean test top-1} per allowed n, {n: l2 picked per seed}).

    Arrays are [N_pad, ...] with label -1 on padding rows (evaluate/features.py layout).
    """
    labels, ids = host(train_labels), host(train_ids)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)
    n_test = int(np.sum(host(test_labels) >= 0))
    grid = tuple(float(g) for g in ev.fewshot_l2_grid)
    results, picks = {}, {}
    for n in ev.fewshot_shots:
        if n >= counts.min():  # at least one held-out example of each class picks l2
            continue
        accs, chosen = [], []
        for s in range(ev.fewshot_seeds):
            shot_rows, held_rows = draw(
                labels, ids, num_classes, n, ev.fewshot_val_per_class, seed + s
            )
            x = host(_take(train_x, shot_rows)).astype(np.float64)
            heads = ridge_heads(x, labels[shot_rows], num_classes, grid)
            if len(heads) > 1:
                xv = host(_take(train_x, held_rows)).astype(np.float64)
                yv = labels[held_rows]
                val = [np.mean(np.argmax(xv @ w + b, -1) == yv) for w, b in heads]
                best = int(np.argmax(val))  # ties: the first of the grid
            else:
                best = 0
            # numpy arguments: replicated inputs on any number of processes.
            w, b = (np.asarray(a, np.float32) for a in heads[best])
            accs.append(float(_correct(test_x, test_labels, w, b)) / max(n_test, 1))
            chosen.append(grid[best])
        results[f"fewshot_{n}shot_top1"] = float(np.mean(accs))
        picks[str(n)] = chosen
    return results, picks
