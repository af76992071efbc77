"""jaxssl: self-supervised pre-training and fine-tuning in JAX/Flax."""
