"""XLA:CPU settings jaxssl applies before jax starts a backend (CPU only; GPU/TPU ignore them).

Convolutions stay on XLA's Eigen kernels instead of YNNPACK: YNNPACK's weight-gradient
convolution made the SimCLR ResNet-18 step 1.55x slower on the idle 2-core machine
(benchmarks/README.md, `vs_pytorch.py --simclr-ynn-convs`); reductions stay in YNNPACK and the
Transformer step is unchanged. Applied only for the jaxlib versions it was measured on (an
unknown XLA flag aborts the process) and never over a value the user put in XLA_FLAGS.
"""

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
