"""The one config orchestrator: each block is checked by its owner, before anything compiles.

Common keys here; the dataset by its kind (data/sources.py), the augmentation recipe by
augment/views.py, the method by its own constructor, the mesh / precision / fault keys by
train/checks.py, fine-tune / predict / embed by finetune/checks.py. Every problem is one
ConfigError naming the key and the fix.
"""

import jax
import ml_collections

from jaxssl import methods, models
from jaxssl.augment import views
from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.train import checks, optim

_FINETUNE_JOBS = ("finetune", "predict", "embed")  # checked in jaxssl/finetune/checks.py
_REQUIRED = (
    "seed",
    "batch_size",
    "total_steps",
    "log_every",
    "checkpoint_every",
    "dataset.name",
    "model.name",
    "method.name",
    "optimizer.name",
    "optimizer.learning_rate",
    "optimizer.weight_decay",
    "optimizer.warmup_steps",
    "eval",
)


def _get(config: ml_collections.ConfigDict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise ConfigError(f"config key `{dotted}` is missing: add it to the config file")
        node = node[part]
    return node


def _positive_int(config, key: str, allow_zero: bool = False) -> int:
    value = _get(config, key)
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{key}={value!r} must be an integer >= {low}: set --config.{key}=<int>")
    return value


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for the first problem found; returns None if the config can run."""
    job = config.get("job", "pretrain")
    for key in _REQUIRED:
        if not (key == "method.name" and job in _FINETUNE_JOBS):  # these reuse an encoder
            _get(config, key)
    batch = _positive_int(config, "batch_size")
    _positive_int(config, "total_steps", allow_zero=True)
    _positive_int(config, "log_every")
    _positive_int(config, "checkpoint_every")
    n_dev = jax.device_count()
    if batch % n_dev:
        raise ConfigError(
            f"batch_size={batch} is not divisible by the {n_dev} devices: use a multiple "
            f"of {n_dev}, e.g. --config.batch_size={max(n_dev, batch // n_dev * n_dev)}"
        )
    if config.model.name not in models.model_names():
        raise ConfigError(
            f"model.name={config.model.name!r} is unknown: use one of "
            f"{', '.join(models.model_names())}"
        )
    if job not in _FINETUNE_JOBS and config.method.name not in methods.METHODS:
        raise ConfigError(
            f"method.name={config.method.name!r} is unknown: use one of "
            f"{', '.join(sorted(methods.METHODS))}"
        )
    opt = config.optimizer
    if opt.name not in optim.OPTIMIZERS:
        raise ConfigError(
            f"optimizer.name={opt.name!r} is unknown: use one of {', '.join(optim.OPTIMIZERS)}"
        )
    if opt.get("lr_scaling", "none") not in optim.LR_SCALINGS:
        raise ConfigError(
            f"optimizer.lr_scaling={opt.lr_scaling!r}: use one of {', '.join(optim.LR_SCALINGS)}"
        )
    if not opt.learning_rate > 0:
        raise ConfigError(f"optimizer.learning_rate={opt.learning_rate} must be > 0")
    try:
        sources.check_dataset(config.dataset)
        info = sources.dataset_info(config.dataset)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"dataset.name={config.dataset.name!r}: {e}") from None
    if "augment" in config and info.image_shape is not None:
        try:
            views.default_config(config.augment.recipe)
            views.check_config(config.augment, info.image_shape[-1])
        except ValueError as e:
            raise ConfigError(f"augment: {e}") from None
    n_train = info.split_sizes["train"]
    if batch > n_train:
        raise ConfigError(
            f"batch_size={batch} is larger than the {n_train} examples of split "
            f"{config.dataset.train_split!r}: lower --config.batch_size"
        )
    ev = config.eval
    if ev.get("enabled", True) and ev.batch_size % n_dev:
        raise ConfigError(
            f"eval.batch_size={ev.batch_size} is not divisible by the {n_dev} devices: "
            f"use a multiple of {n_dev}"
        )
    if job == "pretrain":
        # Building the method is cheap (no tracing) and runs each method's own checks.
        try:
            methods.get_method(config)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"method.name={config.method.name!r}: {e}") from None
    checks.validate_training(config)
    if job in _FINETUNE_JOBS:
        from jaxssl.finetune import checks as finetune_checks  # imports models and methods

        finetune_checks.validate_job(config)
