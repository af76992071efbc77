"""jaxssl: self-supervised pre-training and fine-tuning in JAX/Flax."""

from jaxssl.train import xla_cpu

# Before any jax backend starts (XLA reads XLA_FLAGS once, and its threads pick their malloc
# arena on their first allocation): see train/xla_cpu.py.
xla_cpu.configure()
if xla_cpu.cpu_only():
    xla_cpu.keep_buffers_in_heap()
