"""Encoder features of a whole split, kept sharded by rows over the mesh (never on one device).

At ImageNet scale a feature bank (1.28M x 2048 float32 = 10 GB) does not fit one chip: every
array here is [N_pad, ...] split over all devices along its rows; padding rows have label -1.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxssl import sharding
from jaxssl.data import pipeline

EncodeFn = Callable[[Any, Any, dict[str, jax.Array]], dict[str, jax.Array]]


def host(x: jax.Array) -> np.ndarray:
    """A (small) sharded array's full value on every host."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


@dataclasses.dataclass
class Features:
    """Row-sharded features of one split; labels are -1 on padding rows."""

    arrays: dict[str, jax.Array]  # name -> [N_pad, D] float32
    labels: jax.Array  # [N_pad] int32
    ids: jax.Array  # [N_pad] int32: the example's index in the split (-1: padding)
    count: int  # real rows

    @property
    def valid(self) -> jax.Array:
        """[N_pad] bool: a real example (not padding)."""
        return self.labels >= 0

    def host(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(features [N, D], labels [N]) of the real rows on the host: for small sets and tests."""
        from jax.experimental import multihost_utils

        feats, labels = multihost_utils.process_allgather(
            (self.arrays[name], self.labels), tiled=True
        )
        keep = np.asarray(labels) >= 0
        return np.asarray(feats, np.float32)[keep], np.asarray(labels)[keep]


def feature_fn(encode: EncodeFn, names: Sequence[str], mesh: Mesh) -> Callable:
    """One jitted function (params, model_state, batch) -> {name: float32 [B, D]}, batch-sharded.

    Build it once per evaluation and pass it to `extract` for every split: one compile.
    """

    def features_of(params, model_state, batch):
        out = encode(params, model_state, batch)
        missing = [n for n in names if n not in out]
        if missing:
            raise ValueError(f"feature(s) {missing} not among the encoder's {sorted(out)}")
        return {n: out[n].reshape(out[n].shape[0], -1).astype(jnp.float32) for n in names}

    return jax.jit(features_of, out_shardings=sharding.batch_sharding(mesh))


def extract(
    fn: Callable, params: Any, model_state: Any, source: Any, *, batch_size: int, mesh: Mesh
) -> Features:
    """Features of every example of `source`; each process reads only its shard of the split."""
    outs, labels, ids = [], [], []
    shard, shards, seen = jax.process_index(), jax.process_count(), 0
    for local in pipeline.eval_batches(
        source, batch_size=batch_size, shard_index=shard, shard_count=shards
    ):
        mask = local.pop("mask")
        local_labels = np.where(mask, local.get("label", np.zeros_like(mask, np.int32)), -1)
        # eval_batches strides the split over processes: local row k is example shard + shards*k.
        local_ids = np.where(mask, shard + shards * (seen + np.arange(len(mask))), -1)
        seen += len(mask)
        batch = sharding.to_global_batch(local, mesh)
        outs.append(fn(params, model_state, batch))
        extra = sharding.to_global_batch(
            {"y": local_labels.astype(np.int32), "i": local_ids.astype(np.int32)}, mesh
        )
        labels.append(extra["y"])
        ids.append(extra["i"])
    rows = sharding.batch_sharding(mesh)
    concat = jax.jit(lambda xs: jnp.concatenate(xs), out_shardings=rows)
    arrays = {name: concat([o[name] for o in outs]) for name in outs[0]}
    return Features(arrays, concat(labels), concat(ids), len(source))
