"""Weighted k-nearest-neighbour classification (InstDisc / DINO protocol), bank split by rows.

The bank [N, D] stays sharded over every device: a chunk of queries is compared with each
device's rows, each device keeps its own top-k, and only those k candidates per device are
merged. No device ever holds more than its 1/n share of the bank.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxssl import sharding
from jaxssl.losses import l2_normalize


@functools.partial(jax.jit, static_argnames=("chunk", "k", "num_classes", "mesh"))
def _knn_chunk(bank, bank_labels, queries, start, *, chunk, k, temperature, num_classes, mesh):
    shards = mesh.size
    rows = bank.shape[0] // shards
    q = l2_normalize(jax.lax.dynamic_slice_in_dim(queries, start, chunk))
    sims = q @ bank.T  # [chunk, N]: columns split like the bank's rows
    sims = jnp.where(bank_labels[None] >= 0, sims, -jnp.inf)  # padding rows never vote
    # [chunk, shards, rows]: the top-k over the last axis runs on each device's own rows.
    per_shard = sims.reshape(chunk, shards, rows)
    per_shard = jax.lax.with_sharding_constraint(
        per_shard, NamedSharding(mesh, P(None, sharding.batch_axes(mesh), None))
    )
    local_k = min(k, rows)
    top_sims, top_idx = jax.lax.top_k(per_shard, local_k)
    labels = jnp.take_along_axis(
        jnp.broadcast_to(bank_labels.reshape(1, shards, rows), (chunk, shards, rows)), top_idx, -1
    )
    # Merge: the best k of the shards' candidates (a small [chunk, shards * k] array).
    top_sims, pick = jax.lax.top_k(top_sims.reshape(chunk, -1), k)
    labels = jnp.take_along_axis(labels.reshape(chunk, -1), pick, -1)
    weights = jnp.where(jnp.isfinite(top_sims), jnp.exp(top_sims / temperature), 0.0)
    votes = jax.nn.one_hot(labels, num_classes) * weights[..., None]
    return jax.lax.with_sharding_constraint(votes.sum(axis=1), NamedSharding(mesh, P()))


def knn_scores(
    bank: jax.Array,
    bank_labels: jax.Array,
    queries: jax.Array,
    *,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int,
    mesh: Mesh,
    chunk: int = 1024,
) -> np.ndarray:
    """Class scores [N_queries, C]: sum over the k cosine-nearest bank rows of exp(sim / T).

    bank [N, D] and bank_labels [N] (-1: padding) are split by rows over the mesh (N a
    multiple of its size); queries [M, D] may be sharded or not. Queries go in chunks so a
    [chunk, N / devices] block of similarities is the largest thing each device computes.
    """
    rows = sharding.batch_sharding(mesh)
    pad = -bank.shape[0] % mesh.size  # a bank from the host may not split evenly: pad rows
    if pad:
        bank = jnp.pad(jnp.asarray(bank, jnp.float32), ((0, pad), (0, 0)))
        bank_labels = jnp.pad(jnp.asarray(bank_labels, jnp.int32), (0, pad), constant_values=-1)
    bank = jax.jit(l2_normalize, out_shardings=rows)(jax.device_put(bank, rows))
    bank_labels = jax.device_put(jnp.asarray(bank_labels, jnp.int32), rows)
    m = queries.shape[0]
    chunk = min(chunk, m)
    k = min(k, int(bank.shape[0]))
    out = []
    for start in range(0, m, chunk):
        first = min(start, m - chunk)  # the last chunk overlaps the previous: one shape
        scores = _knn_chunk(
            bank,
            bank_labels,
            queries,
            first,
            chunk=chunk,
            k=k,
            temperature=temperature,
            num_classes=num_classes,
            mesh=mesh,
        )
        out.append(np.asarray(scores)[start - first :])
    return np.concatenate(out)
