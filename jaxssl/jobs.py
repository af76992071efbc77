"""Job registry: a config's `job` key names the module whose run(config, workdir) it calls."""

import importlib
from typing import Any

import jax
import ml_collections

# job name -> module with run(config, workdir) -> summary dict. One line per job.
JOBS: dict[str, str] = {
    "pretrain": "jaxssl.train.pretrain",
}


def prepare(config: ml_collections.ConfigDict) -> None:
    """Joins the other hosts (on a pod) and validates the config; raises ConfigError."""
    if config.get("distributed", False):
        # Must run before anything touches a jax backend.
        jax.distributed.initialize()
    from jaxssl import validate  # imports jax backends: after distributed init

    validate.validate(config)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs config.job in workdir and returns its summary."""
    return importlib.import_module(JOBS[config.job]).run(config, workdir)
