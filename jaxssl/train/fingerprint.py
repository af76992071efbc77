"""A hash of a pytree's exact bytes, so two runs can be compared for bit-identical results."""

import hashlib
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils


def _host_value(x: Any) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))  # collective
    return np.asarray(jax.device_get(x))


def tree_fingerprint(tree: Any) -> str:
    """sha256 over every leaf's path, dtype, shape and bytes (C order), in tree order."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        value = np.ascontiguousarray(_host_value(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
