"""Job registry: a config's `job` key names the module whose run(config, workdir) it calls."""

import datetime
import importlib
import json
import shlex
import sys
import time
from typing import Any

import jax
import ml_collections

# job name -> module with run(config, workdir) -> summary dict. One line per job.
JOBS: dict[str, str] = {
    "pretrain": "jaxssl.train.pretrain",
    "finetune": "jaxssl.finetune.job",
    "predict": "jaxssl.finetune.predict",
    "embed": "jaxssl.finetune.predict",
    "generate": "jaxssl.generate",
    "export": "jaxssl.finetune.export",
    "train_tokenizer": "jaxssl.tokenize",
}


def prepare(config: ml_collections.ConfigDict) -> None:
    """Joins the other hosts (on a pod) and validates the config; raises ConfigError."""
    from jaxssl.config import ConfigError
    from jaxssl.train import distributed

    try:
        # Must run before anything touches a jax backend.
        distributed.initialize(config)
    except ValueError as e:
        raise ConfigError(f"distributed: {e}") from None
    if config.get("job", "pretrain") not in JOBS:
        raise ConfigError(f"job={config.job!r} is unknown: use one of {', '.join(sorted(JOBS))}")
    from jaxssl import validate  # imports jax backends: after distributed init
    from jaxssl.train import compile_cache

    validate.validate(config)
    # Reruns, resumes and the next run of a config start from compiled programs.
    compile_cache.enable(config.get("compile_cache_dir"))
    if jax.default_backend() == "cpu":  # also when an accelerator plugin found no device: the
        from jaxssl.train import xla_cpu  # import left malloc alone (see xla_cpu's docstring)

        xla_cpu.keep_buffers_in_heap()


def execute(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs config.job in workdir holding its lock and returns its summary; raises its errors.

    WorkdirLockedError, ConfigError, NonFiniteError and Preempted reach the caller (the API);
    `run` turns them into the CLI's messages and exit codes. Ends with the results block.
    """
    from jaxssl.train.lock import WorkdirLock

    start = time.time()
    lock = WorkdirLock(workdir) if jax.process_index() == 0 else None
    try:
        if lock is not None:
            lock.acquire()
            stale = _done_path(workdir)
            if stale.exists():  # an earlier run's marker: this run has not finished yet
                stale.unlink()
        result = importlib.import_module(JOBS[config.job]).run(config, workdir)
        _mark_done(config, workdir, result)
    finally:
        if lock is not None:
            lock.release()
    if jax.process_index() == 0:
        print(results_block(result or {}, workdir, time.time() - start), flush=True)
    return result


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs config.job in workdir holding its lock; preemption exits 0 with a resume hint."""
    from jaxssl.config import ConfigError
    from jaxssl.train.lock import WorkdirLockedError
    from jaxssl.train.loop import NonFiniteError
    from jaxssl.train.signals import Preempted

    try:
        return execute(config, workdir)
    except WorkdirLockedError as e:
        _exit(3, f"jaxssl: {e}")
    except ConfigError as e:
        _exit(2, f"jaxssl: config error: {e}")
    except NonFiniteError as e:
        _exit(1, f"jaxssl: {e}")
    except Preempted as e:
        command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
        _exit(0, f"jaxssl: {e}. Resume with the same command:\n  {command}")
    raise AssertionError("unreachable")


# summary.json keys shown at the end of a job, in this order, when the job reports them.
HEADLINE = (
    "knn_top1",
    "linear_probe_top1",
    "online_probe_test_top1",
    "eval_loss",
    "perplexity",
    "bits_per_byte",
    "masked_accuracy",
    "top1",
    "f1_macro",
    "accuracy",
    "mse",
)


def results_block(summary: dict[str, Any], workdir: str, wall_s: float) -> str:
    """What a job found and where it put it, for the screen: metrics, wall time, paths."""
    from jaxssl.train.checkpoint import resolve

    root = resolve(summary.get("workdir") or workdir)
    lines = [f"jaxssl: {summary.get('job', 'job')} finished in {_duration(wall_s)}"]
    shown = [(k, summary[k]) for k in HEADLINE if isinstance(summary.get(k), int | float)]
    if shown:
        width = max(len(k) for k, _ in shown)
        lines += [f"  {k:<{width}}  {v:.4f}" for k, v in shown]
    if "steps" in summary:
        lines.append(f"  steps {summary['steps']}, {summary.get('params_total', 0):,} params")
    places = [
        ("summary", root / "summary.json"),
        ("plots", root / "plots"),
        ("checkpoints", root / "checkpoints"),
        ("output", summary.get("file")),
    ]
    for what, path in places:
        if path and resolve(path).exists():
            lines.append(f"  {what + ':':<13}{path}")
    if any(root.glob("events.out.tfevents.*")):
        lines.append(f"  {'tensorboard:':<13}tensorboard --logdir {shlex.quote(str(root))}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


DONE_FILE = "jaxssl.done"


def _done_path(workdir: str) -> Any:
    from jaxssl.train.checkpoint import resolve

    return resolve(workdir) / DONE_FILE


def _mark_done(config: ml_collections.ConfigDict, workdir: str, result: dict[str, Any]) -> None:
    """workdir/jaxssl.done: the job finished (launchers read this, not summary.json)."""
    if jax.process_index() != 0:
        return
    from jaxssl.train.checkpoint import resolve

    marker = {
        "job": config.get("job", "pretrain"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "result_dir": str((result or {}).get("workdir", resolve(workdir))),
    }
    _done_path(workdir).write_text(json.dumps(marker) + "\n")


def _exit(code: int, message: str) -> None:
    if jax.process_index() == 0:
        print(message, file=sys.stderr if code else sys.stdout, flush=True)
    sys.exit(code)
