"""Python API for notebooks: load a config, run a job, embed arrays with a trained encoder.

    from jaxssl import api

    config = api.load_config("configs/simclr_digits.py", {"total_steps": 200})
    summary = api.run(config, "runs/notebook")          # the summary.json dict
    encoder = api.load_encoder("runs/notebook")
    features = encoder.embed(images)                    # uint8 [N, H, W, C] -> float32 [N, D]

The same code paths as the command line: the config is checked by jaxssl/validate.py, the job
runs through jaxssl/jobs.py (lock, completion marker, results block), the encoder is read by
jaxssl/finetune/predict.py's load_model (the one checkpoint module underneath) and features
come from jaxssl/evaluate/features.py. Errors are raised, never sys.exit: a bad value is a
ConfigError whose message names the key and the fix.
"""

from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np
from absl import logging as absl_logging

from jaxssl import cli
from jaxssl.config import ConfigError


def load_config(path: str, overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """get_config() of a config file with dotted-key overrides, e.g. {"optimizer.lr": 0.1}.

    Unknown keys and values of the wrong type raise ConfigError (with the closest key). The
    result is locked like the command line's: existing keys can still be set, none added.
    """
    config = cli._load(path)
    for key, value in (overrides or {}).items():
        cli._check_override(config, key, f"{key}={value!r}", path)
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        if isinstance(node[last], tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            node[last] = value
        except (TypeError, ValueError) as e:
            current = node[last]
            raise ConfigError(
                f"{key}={value!r}: {e}; {key} takes {type(current).__name__}, e.g. {current!r}"
            ) from None
    config.lock()
    return config


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Validates config, runs its job in workdir (resuming a checkpoint there) and returns
    the summary dict. Raises ConfigError (bad input), WorkdirLockedError (a live run holds
    workdir), NonFiniteError and Preempted, as the command line's exit codes 2, 3, 1, 0."""
    from jaxssl import jobs, validate

    validate.check_workdir(workdir)
    jobs.prepare(config)
    return jobs.execute(config, workdir)


class Encoder:
    """A trained run's encoder (pre-trained or fine-tuned; LoRA merged) on this host's devices."""

    def __init__(self, workdir: str):
        from jaxssl import sharding
        from jaxssl.finetune import predict

        level = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.ERROR)  # orbax's read-only notes: not news
        try:
            self.mesh = sharding.make_mesh()
            # The run's training split gives load_model the input shapes (must be readable).
            self.model, self.params, self.model_state = predict.load_model(workdir, None, self.mesh)
            self.config = self.model.config
        finally:
            absl_logging.set_verbosity(level)
        self._fns: dict[str, Any] = {}

    def _encode(self, params: Any, model_state: Any, batch: dict) -> dict:
        inputs = self.model.inputs(batch, None)
        return self.model.encode(params, model_state, inputs, train=False)[1]

    def embed(
        self, inputs: np.ndarray, feature: str = "pooled", batch_size: int = 256
    ) -> np.ndarray:
        """float32 [N, D] features of uint8 images [N, H, W(, C)] or int token ids [N, L]."""
        from jaxssl.evaluate import features as features_lib

        source = _ArrayRecords(np.asarray(inputs))
        if feature not in self._fns:  # one compile per feature, reused by later calls
            self._fns[feature] = features_lib.feature_fn(self._encode, [feature], self.mesh)
        feats = features_lib.extract(
            self._fns[feature],
            self.params,
            self.model_state,
            source,
            batch_size=batch_size,
            mesh=self.mesh,
        )
        return feats.host(feature)[0]


def load_encoder(workdir: str) -> Encoder:
    """The encoder of a finished (or checkpointed) run's newest checkpoint."""
    return Encoder(workdir)


def embed(workdir: str, inputs: np.ndarray, feature: str = "pooled") -> np.ndarray:
    """load_encoder(workdir).embed(inputs, feature) in one call."""
    return load_encoder(workdir).embed(inputs, feature)


class _ArrayRecords:
    """Rows of an array as the examples a dataset source yields (image or tokens)."""

    def __init__(self, inputs: np.ndarray):
        if inputs.ndim == 0 or len(inputs) == 0:
            raise ValueError("embed needs a non-empty array [N, ...]")
        if inputs.dtype == np.uint8:
            self._key = "image"
            self._inputs = inputs[..., None] if inputs.ndim == 3 else inputs
        elif np.issubdtype(inputs.dtype, np.integer) and inputs.ndim == 2:
            self._key, self._inputs = "tokens", inputs.astype(np.int32)
        else:
            raise ValueError(
                f"embed takes uint8 images [N, H, W(, C)] or int token ids [N, L], got"
                f" {inputs.dtype} {inputs.shape}: convert images with .astype(np.uint8)"
            )

    def __len__(self) -> int:
        return len(self._inputs)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        row = self._inputs[index]
        if self._key == "image":
            return {"image": row}
        return {"tokens": row, "attention_mask": (row != 0).astype(np.int32)}
