"""grain input pipelines: an infinite, sharded, checkpointable train stream and padded eval batches.

Uses grain's MapDataset API rather than DataLoader + IndexSampler: its checkpoint state is a
single `next_index` (DataLoader also stores and re-checks the source's repr, so a moved data_dir
breaks a restore). The stream is shuffled globally, and process p reads rows [p*L, (p+1)*L) of
every global batch of G = P*L examples, so the assembled global batch is exactly, row for row,
the one a single process would see: per-example augmentation keys (one per row) and therefore
the results do not depend on the number of processes.
"""

import sys
from collections.abc import Iterator
from typing import Any

import grain
import jax
import numpy as np

# Read threads, each reading whole batches: enough to hide ArrayRecord/JPEG latency and to
# decode JPEGs on 8 cores (PIL releases the GIL); a batch per thread in flight bounds memory.
# Per batch, not per example: per example the hand-off cost as much host time as reading (the
# digits SimCLR run waited for data 67% of its wall time, 1-4% since).
_READ = grain.ReadOptions(num_threads=8, prefetch_buffer_size=8)


def _shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
    index = jax.process_index() if shard_index is None else shard_index
    count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= index < count:
        raise ValueError(f"shard_index must be in [0, {count}), got {index}")
    return index, count


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _example(ex: dict[str, Any]) -> dict[str, np.ndarray]:
    # Any dict of fixed-shape arrays (images: uint8 "image" + "label"; text: int32 "tokens" ...).
    return {k: np.int32(v) if k == "label" else np.asarray(v) for k, v in ex.items()}


def _shuffle_seed(seed: int) -> int:
    # Decorrelate seeds: epoch e is shuffled with seed + e, so seed s+1 would replay s.
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


_index_shuffle = grain.experimental.index_shuffle


class _ShuffledBatches(grain.MapDataset):
    """Element s: shard p's rows [p*local, (p+1)*local) of global batch s of an endless stream
    that visits the source in a fresh permutation each epoch, stacked.

    The permutation is grain's (`shuffle(seed).repeat()`: epoch e is index_shuffle with seed
    + e, 4 rounds), computed here a batch at a time: grain's per-example datasets cost 16-23
    ms of host CPU per 256-example batch of digits (prometheus counters, stats contexts), 6.7
    ms this way, CPU the 2-core host's XLA threads need. Hand written: grain has strided and
    contiguous slices but not "a block of every batch".
    """

    def __init__(self, source: Any, global_batch: int, local: int, shard: int, seed: int):
        super().__init__()
        self._source, self._n, self._seed = source, len(source), seed
        self._global, self._local, self._offset = global_batch, local, shard * local

    def __len__(self) -> int:
        return sys.maxsize  # endless, as grain's repeat(None)

    def _row(self, position: int) -> dict[str, np.ndarray]:
        epoch, index = divmod(position, self._n)
        seed = (self._seed + epoch) % 2**32
        shuffled = _index_shuffle(index, max_index=self._n - 1, seed=seed, rounds=4)
        return _example(self._source[shuffled])

    def __getitem__(self, step):
        if isinstance(step, slice):
            return self.slice(step)
        first = step * self._global + self._offset
        rows = [self._row(p) for p in range(first, first + self._local)]
        return {k: np.stack([row[k] for row in rows]) for k in rows[0]}


def train_iterator(
    source: Any,
    *,
    global_batch_size: int,
    seed: int,
    shard_index: int | None = None,
    shard_count: int | None = None,
    num_workers: int = 0,
) -> grain.DatasetIterator:
    """Endless shuffled {"image": uint8 [B,H,W,C], "label": int32 [B]}, B = global // shards.

    num_workers > 0 reads and batches in that many grain worker processes (mp_prefetch), each
    with its own read threads: for hosts whose decode outgrows one process (many cores, heavy
    JPEGs). The batches, their order and the checkpointed position do not change.
    """
    shard_index, shard_count = _shard(shard_index, shard_count)
    if global_batch_size <= 0 or global_batch_size % shard_count:
        raise ValueError(
            f"global_batch_size {global_batch_size} must be a positive multiple of the"
            f" {shard_count} data shards (processes)"
        )
    if len(source) < global_batch_size:
        raise ValueError(f"global_batch_size {global_batch_size} > {len(source)} examples")
    local = global_batch_size // shard_count
    ds = _ShuffledBatches(source, global_batch_size, local, shard_index, _shuffle_seed(seed))
    if num_workers == 0:
        return iter(ds.to_iter_dataset(_READ))
    # Workers: each (mp_prefetch slices its input) reads whole batches i, i+K, ..., merged
    # back in order: the same batches as without. Two threads and two batches in flight per
    # worker bound the host memory to 2K batches (the parallelism is the K processes).
    _parse_absl_flags()
    read = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)
    return iter(
        ds.to_iter_dataset(read).mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    )


def _parse_absl_flags() -> None:
    """grain's worker start-up reads absl flags: parsed under jaxssl.main (app.run), not when
    jaxssl runs as a library (api.run, tests); parse defaults then, as app.run would."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["jaxssl"])


def iterator_save_arg(it: grain.DatasetIterator) -> Any:
    """The orbax args that save a train_iterator as one item of ocp.args.Composite."""
    return grain.checkpoint.CheckpointSave(it)


def iterator_restore_arg(it: grain.DatasetIterator) -> Any:
    """The orbax args that restore a checkpointed stream into `it` (a fresh train_iterator)."""
    return grain.checkpoint.CheckpointRestore(it)


def eval_batches(
    source: Any,
    *,
    batch_size: int,
    shard_index: int | None = None,
    shard_count: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """One in-order pass as {"image", "label", "mask"} batches of a fixed size, padding masked."""
    shard_index, shard_count = _shard(shard_index, shard_count)
    n = len(source)
    if n == 0 or batch_size <= 0:
        raise ValueError(f"eval needs a non-empty split and batch_size > 0 (got {n}, {batch_size})")
    # Every shard yields the same number of batches so multi-host eval steps stay in lockstep.
    num_batches = _ceil_div(_ceil_div(n, shard_count), batch_size)
    ds = grain.MapDataset.source(source)[shard_index::shard_count].map(_example)
    batches = iter(ds.batch(batch_size).to_iter_dataset(_READ))
    first = _example(source[0])
    empty = {k: np.zeros((0, *np.shape(v)), np.asarray(v).dtype) for k, v in first.items()}
    for _ in range(num_batches):
        batch = next(batches, empty)
        size = len(next(iter(batch.values())))
        if size < batch_size:
            batch = {
                k: np.concatenate([v, np.zeros((batch_size - size, *v.shape[1:]), v.dtype)])
                for k, v in batch.items()
            }
        batch["mask"] = np.arange(batch_size) < size
        yield batch
