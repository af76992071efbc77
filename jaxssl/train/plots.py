"""Loss-curve PNGs from metrics.jsonl, for a look at a run without TensorBoard."""

import matplotlib

matplotlib.use("Agg")  # headless: no display on TPU VMs or CI

import matplotlib.pyplot as plt  # noqa: E402
from etils import epath  # noqa: E402

from jaxssl.train.writers import read_metrics  # noqa: E402


def plot_curves(workdir: epath.PathLike, keys: tuple[str, ...] = ("loss",)) -> list[epath.Path]:
    """Writes plots/<key>.png for each key present in metrics.jsonl; returns the paths."""
    records = read_metrics(workdir)
    out_dir = epath.Path(workdir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(*zip(*points, strict=True))
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        path = out_dir / f"{key}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
