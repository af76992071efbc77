"""Test setup: 8 virtual CPU devices so sharding is exercised everywhere.

XLA's backend optimisations are turned down: test models are tiny, so compiling dominates and
optimised code would not pay back (measured in issue 16: test_train_step 19.1 s -> 7.6 s; the
fusion emitters off took a tiny BYOL step's compile from 1.6 to 0.9 s); results stay exact (the
bit-identical resume test still holds), only slower to run.
"""

import atexit
import os
import shutil
import tempfile

# Fewer optimisations: compile time dominates tiny test models (kept by subprocesses too).
FAST_COMPILE = (
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_use_fusion_emitters=false"
)

# Must happen before jax is imported anywhere in the test session.
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):  # xdist workers inherit them
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_force_host_platform_device_count=8 "
        + FAST_COMPILE
    ).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The system malloc in the test processes (test_xla_cpu.py sets it per subprocess). Added while
# chasing launch-test hangs that were inherited signal dispositions (test_launch._default_signals);
# the full suite with jaxssl's heap setting in the workers is not yet verified in a fresh clone.
os.environ.setdefault("JAXSSL_SYSTEM_MALLOC", "1")

# One persistent compilation cache for the session, its pytest-xdist workers (they inherit
# this environment from the controller) and the subprocesses tests start: the same tiny
# program (the SimCLR step of several modules, a CLI run and its resume) compiles once.
if "JAXSSL_TEST_CACHE" not in os.environ:  # the controller (or a run without xdist) owns it
    _CACHE = tempfile.mkdtemp(prefix="jaxssl_test_xla_")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ.update(
        JAXSSL_TEST_CACHE=_CACHE,
        JAX_COMPILATION_CACHE_DIR=_CACHE,
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )

import jaxssl  # noqa: E402, F401  (its XLA:CPU settings, before any backend starts: as the CLI)
