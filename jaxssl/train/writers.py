"""Metric sinks: metrics.jsonl, TensorBoard events and (opt-in) Weights & Biases.

Training metrics are written under their own names (loss, ssl_loss, learning_rate ...);
evaluation results, during and after training, under "eval/" (eval/knn_top1 ...), with the
step they were measured at, to every sink alike.
"""

import json
import sys
import time
from typing import Any

import jax
import ml_collections
from etils import epath


def _summary_writer() -> type:
    """tensorboardX's SummaryWriter, imported late (keeps `import jaxssl` light) and without
    torch: tensorboardX imports torch when installed only to accept torch tensors (about 1 s of
    every start); jaxssl writes floats."""
    hidden = "torch" not in sys.modules
    if hidden:
        sys.modules["torch"] = None  # an import of it raises ImportError, as if absent
    try:
        from tensorboardX import SummaryWriter
    finally:
        if hidden:
            del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """Writes one record per log step to every enabled sink; only process 0 writes."""

    def __init__(self, workdir: epath.PathLike, config: ml_collections.ConfigDict):
        self.enabled = jax.process_index() == 0
        self.workdir = epath.Path(workdir)
        self._jsonl = None
        self._tb = None
        self._wandb = None
        if not self.enabled:
            return
        # Append, never truncate: a resumed run keeps the history already written.
        self._jsonl = (self.workdir / "metrics.jsonl").open("a")
        self._tb = _summary_writer()(logdir=str(self.workdir))
        wandb_cfg = config.get("wandb", None)
        if wandb_cfg is not None and wandb_cfg.get("enabled", False):
            import wandb

            self._wandb = wandb.init(
                project=wandb_cfg.get("project", "jaxssl"),
                name=wandb_cfg.get("name", None),
                dir=str(self.workdir),
                config=config.to_dict(),
                resume="allow",
            )

    def write(self, step: int, scalars: dict[str, Any], prefix: str = "") -> None:
        """Records the numbers among scalars at step in every sink, names prefixed ("eval/")."""
        if not self.enabled:
            return
        values = {f"{prefix}{k}": float(v) for k, v in numbers(scalars).items()}
        if not values:
            return
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._jsonl.flush()
        for k, v in values.items():
            self._tb.add_scalar(k, v, step)
        self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def close(self) -> None:
        """Flushes and closes all sinks."""
        if not self.enabled:
            return
        self._jsonl.close()
        self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def numbers(results: dict[str, Any]) -> dict[str, float]:
    """The scalar numbers of a results dict (no bools, strings or nested protocol notes)."""
    out = {}
    for k, v in results.items():
        if isinstance(v, bool) or isinstance(v, str | dict | list | tuple) or v is None:
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def read_metrics(workdir: epath.PathLike) -> list[dict[str, float]]:
    """All records of workdir/metrics.jsonl, in order."""
    path = epath.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
