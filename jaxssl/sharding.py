"""Device mesh and shardings: batch over `data` x `fsdp` (every device); params over `fsdp`.

Where each state leaf lives is a shape rule, not per-layer names, so every model and optimizer
works unchanged: a leaf with at least `min_size` elements is split along its largest dimension
that the fsdp axis divides; optimizer moments have their param's shape, so they follow it.
"""

import math
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)


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


def make_mesh(devices: list | None = None, fsdp: int = 1) -> Mesh:
    """A (data, fsdp) mesh over all (or the given) devices; fsdp=1 is pure data parallelism."""
    given = devices is not None
    devices = jax.devices() if devices is None else list(devices)
    if fsdp < 1 or len(devices) % fsdp:
        raise ValueError(f"mesh.fsdp={fsdp} must divide the {len(devices)} devices")
    shape = (len(devices) // fsdp, fsdp)
    if given or len(devices) == 1:
        grid = np.asarray(devices).reshape(shape)
    else:
        # Topology-aware: fsdp groups on neighbouring chips (ICI), data across hosts/slices.
        grid = mesh_utils.create_device_mesh(shape, devices)
    return Mesh(grid, (DATA_AXIS, FSDP_AXIS))


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes the batch (and a feature bank's rows) is split over."""
    return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over every device (the data and fsdp axes)."""
    return NamedSharding(mesh, P(batch_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    """Same full value on every device."""
    return NamedSharding(mesh, P())


def to_global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles each process's slice of the batch into one global sharded jax.Array."""
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def tree_replicated(tree: Any, mesh: Mesh) -> Any:
    """A pytree of replicated shardings matching `tree`."""
    return jax.tree.map(lambda _: replicated(mesh), tree)
