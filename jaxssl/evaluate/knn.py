"""Weighted k-nearest-neighbour classification (InstDisc / DINO protocol)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxssl.losses import l2_normalize


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_chunk(bank, bank_labels, queries, *, k, temperature, num_classes):
    sims = l2_normalize(queries) @ bank.T  # cosine similarity: bank is pre-normalised
    top_sims, top_idx = jax.lax.top_k(sims, k)
    weights = jnp.exp(top_sims / temperature)
    votes = jax.nn.one_hot(bank_labels[top_idx], num_classes) * weights[..., None]
    return votes.sum(axis=1)


def knn_scores(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int,
    chunk: int = 1024,
) -> np.ndarray:
    """Class scores [N_test, C]: sum over the k cosine-nearest train points of exp(sim/T)."""
    bank = l2_normalize(jnp.asarray(train_features, jnp.float32))
    bank_labels = jnp.asarray(train_labels, jnp.int32)
    k = min(k, bank.shape[0])
    out = []
    # Chunks of queries bound the [chunk, N_train] similarity matrix in memory.
    for start in range(0, len(test_features), chunk):
        q = jnp.asarray(test_features[start : start + chunk], jnp.float32)
        if q.shape[0] < chunk and len(test_features) > chunk:
            q = jnp.pad(q, ((0, chunk - q.shape[0]), (0, 0)))  # one compiled shape
        scores = _knn_chunk(
            bank, bank_labels, q, k=k, temperature=temperature, num_classes=num_classes
        )
        out.append(np.asarray(scores))
    return np.concatenate(out)[: len(test_features)]
