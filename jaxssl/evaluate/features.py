"""Encoder features of a whole split, computed batch by batch on the mesh."""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from jaxssl.data import pipeline
from jaxssl.train import mesh as mesh_lib

EncodeFn = Callable[[Any, Any, dict[str, jax.Array]], dict[str, jax.Array]]


def extract_features(
    encode: EncodeFn,
    params: Any,
    model_state: Any,
    source: Any,
    *,
    batch_size: int,
    feature: str,
    mesh: Mesh,
) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], labels [N]) of every example of `source`, in order, on all hosts."""

    def features_of(params, model_state, batch):
        return encode(params, model_state, batch)[feature]

    fn = jax.jit(features_of, out_shardings=mesh_lib.batch_sharding(mesh))
    feats, labels = [], []
    for local in pipeline.eval_batches(
        source,
        batch_size=batch_size,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    ):
        mask = local.pop("mask")
        batch = mesh_lib.to_global_batch(local, mesh)
        out = fn(params, model_state, batch)
        # Every host gets the full batch back; padding rows are dropped by the mask.
        out, lab, keep = (
            multihost_utils.process_allgather(x, tiled=True)
            for x in (out, batch["label"], mesh_lib.to_global_batch({"m": mask}, mesh)["m"])
        )
        keep = np.asarray(keep, bool)
        feats.append(np.asarray(out, np.float32)[keep])
        labels.append(np.asarray(lab)[keep])
    return np.concatenate(feats), np.concatenate(labels)
