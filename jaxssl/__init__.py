"""jaxssl: self-supervised pre-training and fine-tuning in JAX/Flax."""

from jaxssl.train import xla_cpu

# Before any jax backend starts (XLA reads XLA_FLAGS once): see train/xla_cpu.py.
xla_cpu.configure()
