"""Curves of a run as PNGs from metrics.jsonl, for a look at a run without TensorBoard.

One figure per quantity, each titled with the run (method, model, dataset): the training
objective without the online probe's term (loss.png), the online probe's loss and accuracy,
the learning rate, and every evaluation result over the steps it was measured at
(knn_top1.png, linear_probe_top1.png ...: logged under "eval/" in metrics.jsonl).
"""

import ml_collections
from etils import epath

from jaxssl.evaluate.headless import pyplot
from jaxssl.train.writers import read_metrics

EVAL_PREFIX = "eval/"
# (file name, y label, metric keys in order of preference: the first one logged is plotted).
TRAIN_CURVES = (
    ("loss", "training loss", ("ssl_loss", "task_loss", "loss")),
    ("online_probe_loss", "online probe loss (train batch)", ("online_probe_loss",)),
    ("online_probe_top1", "online probe top-1 (train batch)", ("online_probe_top1",)),
    ("learning_rate", "learning rate", ("learning_rate",)),
)


def run_title(config: ml_collections.ConfigDict) -> str:
    """method · model · dataset (fine-tuning: finetune[mode] · model · dataset)."""
    job = config.get("job", "pretrain")
    if job == "pretrain":
        what = config.method.name
    elif "finetune" in config:
        what = f"{job}[{config.finetune.get('mode', 'full')}]"
    else:
        what = job
    return f"{what} · {config.model.name} · {config.dataset.name}"


def _figure(path: epath.Path, points: list, title: str, ylabel: str, markers: bool) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(*zip(*points, strict=True), marker="o" if markers else None)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_run(workdir: epath.PathLike, title: str) -> list[epath.Path]:
    """Writes plots/<name>.png for each curve metrics.jsonl holds; returns the paths."""
    records = read_metrics(workdir)
    out_dir = epath.Path(workdir) / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ylabel, keys in TRAIN_CURVES:
        key = next((k for k in keys if any(k in r for r in records)), None)
        if key is None:
            continue
        if key == "ssl_loss":
            ylabel = "self-supervised loss (without the online probe's)"
        points = [(r["step"], r[key]) for r in records if key in r]
        _figure(out_dir / f"{name}.png", points, title, ylabel, markers=len(points) < 3)
        written.append(out_dir / f"{name}.png")
    evaluated = dict.fromkeys(k for r in records for k in r if k.startswith(EVAL_PREFIX))
    for key in evaluated:
        name = key[len(EVAL_PREFIX) :].replace("/", "_")
        points = [(r["step"], r[key]) for r in records if key in r]
        _figure(out_dir / f"{name}.png", points, title, f"{name} (evaluation)", markers=True)
        written.append(out_dir / f"{name}.png")
    return written
