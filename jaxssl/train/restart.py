"""A CPU run started from the command line starts again once its train step is compiled.

On a CPU-only host jaxssl keeps every thread in one malloc arena (xla_cpu.keep_buffers_in_heap),
so what the compiler frees stays in the heap the steps allocate from, and oneDNN's per-call
matmul workspaces then walk its free chunks: a process that compiled its train step runs it
1.15-1.28x slower than one that loaded it from the persistent compilation cache
(benchmarks/README.md, "The cause"). No malloc setting keeps both the steps' buffers mapped and
the compiler's garbage apart, so the CLI replaces its process, once, after the first step has put
the train step in the cache: the new process (same command, same pid) loads the state's init and
the step, and trains on a heap the compiler never touched. That costs a second start-up and gains
6-23 ms a step, so only runs with at least MIN_STEPS steps left do it (the 2,000-step LM run's
first start: 128.7 -> 104.9 s on a 2-core Zen 4). Nothing is lost: the first process wrote no
step, metric or checkpoint. `JAXSSL_RESTART_MIN_STEPS` sets the threshold (0: never restart).
"""

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import jax

from jaxssl.train import compile_cache, xla_cpu

ENV_MIN_STEPS = "JAXSSL_RESTART_MIN_STEPS"
MIN_STEPS = 500  # break-even of a 3 s start-up at 6 ms a step, the LM's gain
ENV_RESTARTED = "JAXSSL_RESTARTED"  # set in the new process: it never restarts again

_from_cli = False  # the API's callers keep their process: only jobs.run (the CLI) allows it


class Restart(Exception):  # noqa: N818 - a request, not an error
    """The train step is in the cache now: start the command again on a clean heap."""


def allow() -> None:
    """Called by the CLI's job runner: this process may be replaced."""
    global _from_cli
    _from_cli = True


def min_steps() -> int:
    """Steps a run must have left to restart (JAXSSL_RESTART_MIN_STEPS, default MIN_STEPS)."""
    value = os.environ.get(ENV_MIN_STEPS, "").strip()
    return int(value) if value.isdigit() else MIN_STEPS


def watch(train_step: Callable, steps_left: int, stopping: Callable[[], bool]) -> Callable:
    """train_step, raising Restart after its first call when that call compiled the step into
    the cache and the run qualifies (CLI, one process, jaxssl's heap setting, steps left)."""
    wanted = (
        _from_cli
        and not os.environ.get(ENV_RESTARTED)
        and xla_cpu.heap_kept()
        and jax.process_count() == 1
        and 0 < min_steps() <= steps_left
    )
    before = compile_cache.entries() if wanted else None
    if before is None:
        return train_step
    first = True

    def step(state: Any, batch: Any) -> Any:
        nonlocal first
        out = train_step(state, batch)
        if first:
            first = False
            if (compile_cache.entries() or set()) - before and not stopping():
                raise Restart()
        return out

    return step


def reexec() -> NoReturn:
    """Replaces this process with the same command, marked so that it does not restart."""
    print(
        "jaxssl: the train step is compiled and cached; starting again to train on a heap the"
        f" compiler did not fragment ({ENV_MIN_STEPS}=0 turns this off)",
        flush=True,
    )
    sys.stderr.flush()
    os.environ[ENV_RESTARTED] = "1"
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
