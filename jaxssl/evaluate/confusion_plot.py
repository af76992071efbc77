"""Confusion-matrix PNG: counts per (true, predicted) class, for plots/ in a workdir."""

from collections.abc import Sequence

import numpy as np
from etils import epath

from jaxssl.evaluate.headless import pyplot


def write_confusion_matrix(
    cm: np.ndarray, path: epath.PathLike, class_names: Sequence[str] | None = None
) -> epath.Path:
    """Writes cm ([true, predicted] counts) as a labelled heat map; returns the path."""
    cm = np.asarray(cm)
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    size = min(4 + 0.4 * n, 40)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ticks = np.arange(n) if n <= 50 else []  # past 50 classes tick labels are unreadable
    ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90 if n > 10 else 0)
    ax.set_yticks(ticks, [names[i] for i in ticks])
    if n <= 30:  # counts in cells only while they stay legible
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
