"""Test setup: 8 virtual CPU devices so sharding is exercised everywhere.

XLA's backend optimisations are turned down: test models are tiny, so compiling dominates and
optimised code would not pay back (measured in issue 16: test_train_step 19.1 s -> 7.6 s);
results stay exact (the bit-identical resume test still holds), only slower to run.
"""

import os

# Must happen before jax is imported anywhere in the test session.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
    + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
