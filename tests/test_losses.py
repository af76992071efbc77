"""NT-Xent against an independent numpy implementation and analytic values."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import losses


def numpy_nt_xent(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """Loop-based reference: the SimCLR paper's l(i, j) averaged over all 2N anchors."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = np.array([z[i] @ z[k] / temperature for k in range(2 * n) if k != i])
        pos = z[i] @ z[j] / temperature
        total += -(pos - np.log(np.sum(np.exp(sims))))
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_numpy(temperature):
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, 12, 7))
    loss, _ = losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature)
    np.testing.assert_allclose(loss, numpy_nt_xent(z1, z2, temperature), rtol=1e-5)


def test_nt_xent_symmetric_in_views():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(2, 9, 5))
    a, _ = losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), 0.2)
    b, _ = losses.nt_xent(jnp.asarray(z2), jnp.asarray(z1), 0.2)
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_identical_embeddings_give_log_2n_minus_1(temperature):
    # Every candidate has the same similarity, so each softmax is uniform over 2N-1.
    n = 6
    z = jnp.ones((n, 4))
    loss, _ = losses.nt_xent(z, z, temperature)
    np.testing.assert_allclose(loss, np.log(2 * n - 1), rtol=1e-5)


def test_perfectly_aligned_views_have_low_loss_and_full_accuracy():
    z = jnp.eye(8) * 10
    loss, acc = losses.nt_xent(z, z, 0.1)
    assert float(acc) == 1.0
    assert float(loss) < 1e-3


def test_l2_normalize_unit_norm_and_zero_safe():
    x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
    y = losses.l2_normalize(x)
    np.testing.assert_allclose(y[0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(y[1], [0.0, 0.0])
