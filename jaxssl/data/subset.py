"""Label-efficient training: a deterministic, class-balanced fraction of a split's labels."""

from typing import Any

import numpy as np


def balanced_indices(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of round(fraction * N) examples (>= 1 per class), equal per class.

    Each class keeps a prefix of its own seeded permutation, so for one seed a smaller
    fraction's subset lies inside a larger one's (SimCLR's 1% within 10%, per class). A class
    with too few examples gives all it has; the remainder goes to classes chosen in a
    seeded order.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    if fraction == 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    total = max(len(classes), round(fraction * len(labels)))
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    take = dict.fromkeys(classes, 0)
    order = rng.permutation(classes)
    while sum(take.values()) < total:
        open_classes = [c for c in order if take[c] < len(pools[c])]
        if not open_classes:
            break
        # One round: each class that still has examples gets one more, in the seeded order.
        for c in open_classes[: total - sum(take.values())]:
            take[c] += 1
    return np.sort(np.concatenate([pools[c][: take[c]] for c in classes]))


def read_labels(source: Any) -> np.ndarray:
    """Every label of a random-access source, in order."""
    return np.asarray([int(source[i]["label"]) for i in range(len(source))], np.int64)


class SubsetSource:
    """A view of `source` at `indices`, tiled to at least `min_length` examples."""

    def __init__(self, source: Any, indices: np.ndarray, min_length: int = 0):
        reps = max(1, -(-min_length // max(len(indices), 1)))
        self._source, self._index = source, np.tile(np.asarray(indices), reps)
        self.num_unique = len(indices)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._source[int(self._index[index])]

    def __repr__(self) -> str:
        return f"SubsetSource({self._source!r}, unique={self.num_unique}, n={len(self)})"
