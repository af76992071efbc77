"""XLA:CPU settings: XLA_FLAGS before jax starts a backend, and malloc's on the CPU backend.

Convolutions stay on XLA's Eigen kernels instead of YNNPACK: YNNPACK's weight-gradient
convolution made the SimCLR ResNet-18 step 1.55x slower on the idle 2-core machine
(benchmarks/README.md, `vs_pytorch.py --simclr-ynn-convs`); reductions stay in YNNPACK and the
Transformer step is unchanged. Applied only for the jaxlib versions it was measured on (an
unknown XLA flag aborts the process) and never over a value the user put in XLA_FLAGS.

glibc's malloc serves blocks above its mmap threshold with fresh mmaps, and the blocks XLA's
threads allocate from arenas of their own whose heaps it maps and unmaps as they fill and
empty: either way each call of a compiled step page-faulted its temporary buffers in again (3.7
million minor faults and 7 s of system time in an 800-step causal-LM run, a third of its wall
time). keep_buffers_in_heap keeps them in one heap that stays mapped (hand-coded: no library
sets malloc options; tcmalloc/jemalloc would need LD_PRELOAD). The arena limit only holds for
threads that have not allocated yet, so jaxssl's import applies it when jax can only use the
CPU (no accelerator plugin; JAX_PLATFORMS=cpu), before XLA starts its threads.

Its cost besides memory: the compiler's threads share that arena, and what a compilation frees
stays there as free chunks of many sizes, so a process that compiled its train step paid 3.5 us
instead of 0.4 for each of oneDNN's matmul workspaces (1.15-1.36x slower steps than a process
that loaded the step from the compilation cache; benchmarks/README.md, "The cause") until
train/heap.settle took those chunks out of malloc's bins.
"""

import ctypes
import importlib.util
import os
import pkgutil
from importlib import metadata
from typing import Any

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
VALUE = "reduce"
MEASURED = ((0, 10), (0, 11))  # jaxlib [0.10, 0.11): the flag exists and was measured


def _version() -> tuple[int, int]:
    try:
        major, minor = metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return (0, 0)


def configure() -> bool:
    """Appends FLAG=VALUE to XLA_FLAGS when it applies; True when it did."""
    flags = os.environ.get("XLA_FLAGS", "")
    low, high = MEASURED
    if FLAG in flags or not low <= _version() < high:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={VALUE}".strip()
    return True


# mallopt parameters (malloc.h): freed heap memory above this stays; at most this many mmaps;
# at most this many arenas.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
OPT_OUT = "JAXSSL_SYSTEM_MALLOC"  # set (to anything) to leave malloc as the system sets it


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a glibc system (macOS, musl)
        return False


def keep_buffers_in_heap() -> bool:
    """On glibc: one arena, large blocks from the heap, freed memory kept for the next step
    (M_ARENA_MAX=1, M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB); True when applied. The process keeps
    its peak host memory instead of returning it to the system between steps."""
    if os.environ.get(OPT_OUT) or not _glibc():
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
    global _kept
    _kept = all([bool(mallopt(param, value)) for param, value in settings])
    return _kept


_kept = False  # whether keep_buffers_in_heap applied its settings in this process


def heap_kept() -> bool:
    """Whether this process runs on keep_buffers_in_heap's one arena."""
    return _kept


# Compiler options for the state's init, a program that runs once: LLVM at -O1 instead of
# XLA's default -O3 compiles the LM's init in 1.35 s instead of 1.92 and MAE's in 2.89 instead
# of 3.85 (the Zen 4, 3 runs each), with bit-identical params (tests/test_train_step.py checks
# it). -O0 would change them (by 3e-8): its float code differs.
ONCE_OPTIONS = {"xla_backend_optimization_level": 1}


def run_once_options() -> dict[str, Any] | None:
    """Compiler options for a program run once (the init) on the CPU backend; None elsewhere
    (not measured there) and when XLA_FLAGS sets the level itself (the user's choice)."""
    import jax  # here: importing jaxssl sets XLA_FLAGS through this module without jax

    if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
        return None
    return dict(ONCE_OPTIONS) if jax.default_backend() == "cpu" else None


def cpu_only() -> bool:
    """Whether jax can only pick the CPU: JAX_PLATFORMS starts with cpu, or it is unset and no
    accelerator plugin (jax_plugins.*, libtpu) is installed. Nothing is initialised."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    if importlib.util.find_spec("libtpu") is not None:
        return False
    plugins = importlib.util.find_spec("jax_plugins")
    locations = plugins.submodule_search_locations if plugins else None
    return not (locations and any(pkgutil.iter_modules(locations)))
