"""Validation of the training-infrastructure keys (mesh, precision, fault handling)."""

import inspect

import jax
import ml_collections

from jaxssl import models
from jaxssl.config import ConfigError
from jaxssl.train.precision import PRECISIONS


def _bool(config: ml_collections.ConfigDict, key: str) -> None:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be True or False: set --config.{key}=True")


def _accepts(model_name: str, kwarg: str) -> bool:
    """Whether the registered factory takes `kwarg` (a flax field or a function parameter)."""
    factory = models.MODELS[model_name]
    target = getattr(factory, "func", factory)  # functools.partial (ResNet18 ...)
    if kwarg in getattr(target, "__dataclass_fields__", {}):
        return True
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True  # cannot tell: let the model itself reject it
    return kwarg in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def validate_training(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for a bad mesh/precision/remat/fault-handling key."""
    for key in ("skip_nonfinite", "fresh_start", "remat"):
        _bool(config, key)
    precision = config.get("precision", "float32")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    name = config.get("model", ml_collections.ConfigDict()).get("name")
    for key, wanted, kwarg in (
        ("precision", precision != "float32", "dtype"),
        ("remat", config.get("remat", False), "remat"),
    ):
        if wanted and name in models.MODELS and not _accepts(name, kwarg):
            raise ConfigError(
                f"{key}: model {name!r} has no `{kwarg}` attribute, so it cannot honour "
                f"--config.{key}; drop the flag or add `{kwarg}` to the model"
            )
    mesh = config.get("mesh", ml_collections.ConfigDict())
    fsdp = mesh.get("fsdp", 1)
    n_dev = jax.device_count()
    if not isinstance(fsdp, int) or fsdp < 1 or n_dev % fsdp:
        raise ConfigError(
            f"mesh.fsdp={fsdp!r} must be a positive divisor of the {n_dev} devices "
            f"(e.g. --config.mesh.fsdp={n_dev})"
        )
