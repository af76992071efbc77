"""The pre-training job: config.method on the one job skeleton, then the evaluation protocol."""

from typing import Any

import ml_collections
from etils import epath
from jax.sharding import Mesh

from jaxssl import methods
from jaxssl.data import sources
from jaxssl.evaluate import protocol
from jaxssl.train import checkpoint, optim, skeleton


def build(config: ml_collections.ConfigDict, mesh: Mesh) -> skeleton.JobParts:
    """The method, its training split, optimizer and evaluation (kNN, probes, or its own)."""
    del mesh
    method = methods.get_method(config)

    def evaluate(state: Any, mesh: Mesh, workdir: epath.Path) -> dict[str, Any]:
        del workdir
        if not config.eval.get("enabled", True):
            return {}
        return protocol.evaluate_method(method, state.params, state.model_state, config, mesh)

    init_from = config.get("init_from") or None
    return skeleton.JobParts(
        method=method,
        train_source=sources.get_source(config.dataset, config.dataset.train_split),
        tx=optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps),
        schedule=optim.make_schedule(config.optimizer, config.batch_size, config.total_steps),
        evaluate=evaluate,
        # Continue pre-training from another run's encoder (its params and statistics).
        init_from=(lambda state: checkpoint.load_encoder(state, init_from)) if init_from else None,
        summary={"method": config.method.name, "init_from": init_from},
        desc="pretrain",
    )


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Pre-trains config.method, then evaluates the encoder; returns the summary."""
    return skeleton.run(config, workdir, build)
