"""Where each state leaf lives: replicated, or split over the `fsdp` mesh axis by its shape.

A shape rule (not per-layer names) so every model and optimizer works unchanged: a leaf with
at least `min_size` elements is split along its largest dimension that the fsdp axis divides;
optimizer moments have their param's shape, so they follow their param automatically.
"""

import math
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

FSDP_AXIS = "fsdp"


def leaf_spec(shape: tuple[int, ...], fsdp_size: int, min_size: int) -> P:
    """The PartitionSpec of one leaf: its largest fsdp-divisible dim on `fsdp`, else replicated."""
    if fsdp_size <= 1 or math.prod(shape) < max(min_size, 1) or not shape:
        return P()
    for dim in sorted(range(len(shape)), key=lambda i: -shape[i]):
        if shape[dim] % fsdp_size == 0:
            spec: list[str | None] = [None] * len(shape)
            spec[dim] = FSDP_AXIS
            return P(*spec)
    return P()  # no dimension divides: keep it whole rather than pad


def tree_shardings(tree: Any, mesh: Mesh, min_size: int) -> Any:
    """NamedShardings for every leaf of `tree` (arrays or ShapeDtypeStructs) by leaf_spec."""
    size = mesh.shape.get(FSDP_AXIS, 1)
    return jax.tree.map(lambda x: NamedSharding(mesh, leaf_spec(x.shape, size, min_size)), tree)
