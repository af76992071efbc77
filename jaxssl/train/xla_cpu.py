"""XLA:CPU settings: XLA_FLAGS before jax starts a backend, and malloc's on the CPU backend.

Convolutions stay on XLA's Eigen kernels instead of YNNPACK: YNNPACK's weight-gradient
convolution made the SimCLR ResNet-18 step 1.55x slower on the idle 2-core machine
(benchmarks/README.md, `vs_pytorch.py --simclr-ynn-convs`); reductions stay in YNNPACK and the
Transformer step is unchanged. Applied only for the jaxlib versions it was measured on (an
unknown XLA flag aborts the process) and never over a value the user put in XLA_FLAGS.

glibc's malloc serves blocks above its mmap threshold with fresh mmaps and unmaps them on
free, so each call of a compiled step page-faults its large temporary buffers again (7 million
minor faults in a 30 s causal-LM run). keep_buffers_in_heap turns that off (hand-coded: no
library sets malloc options; tcmalloc/jemalloc would need LD_PRELOAD).
"""

import ctypes
import os
from importlib import metadata

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


# mallopt parameters (malloc.h): freed heap memory above this stays; at most this many mmaps.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
OPT_OUT = "JAXSSL_SYSTEM_MALLOC"  # set (to anything) to leave malloc as the system sets it


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a glibc system (macOS, musl)
        return False


def keep_buffers_in_heap() -> bool:
    """On glibc, large blocks come from the heap and freed ones stay there for the next step
    (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB); True when applied. The process keeps its peak
    host memory instead of returning it to the system between steps."""
    if os.environ.get(OPT_OUT) or not _glibc():
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
