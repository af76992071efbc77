"""Job registry: a config's `job` key names the module whose run(config, workdir) it calls."""

import datetime
import importlib
import json
import shlex
import sys
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

    validate.validate(config)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs config.job in workdir holding its lock; preemption exits 0 with a resume hint."""
    from jaxssl.config import ConfigError
    from jaxssl.train.lock import WorkdirLock, WorkdirLockedError
    from jaxssl.train.loop import NonFiniteError
    from jaxssl.train.signals import Preempted

    lock = WorkdirLock(workdir) if jax.process_index() == 0 else None
    try:
        if lock is not None:
            lock.acquire()
        result = importlib.import_module(JOBS[config.job]).run(config, workdir)
        _mark_done(config, workdir, result)
        return result
    except WorkdirLockedError as e:
        _exit(3, f"jaxssl: {e}")
    except ConfigError as e:
        _exit(2, f"jaxssl: config error: {e}")
    except NonFiniteError as e:
        _exit(1, f"jaxssl: {e}")
    except Preempted as e:
        command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
        _exit(0, f"jaxssl: {e}. Resume with the same command:\n  {command}")
    finally:
        if lock is not None:
            lock.release()
    raise AssertionError("unreachable")


DONE_FILE = "jaxssl.done"


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
    (resolve(workdir) / DONE_FILE).write_text(json.dumps(marker) + "\n")


def _exit(code: int, message: str) -> None:
    if jax.process_index() == 0:
        print(message, file=sys.stderr if code else sys.stdout, flush=True)
    sys.exit(code)
