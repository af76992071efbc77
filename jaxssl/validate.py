"""The one config orchestrator: each block is checked by its owner, before anything compiles.

Common keys here; the dataset by its kind (data/sources.py), the augmentation recipe by
augment/views.py, the method by its own constructor, the mesh / precision / fault keys by
train/checks.py, fine-tune / predict / embed by finetune/checks.py. Every problem is one
ConfigError naming the key and the fix.
"""

import netrc
import os
import tempfile
import urllib.parse

import jax
import ml_collections

from jaxssl import methods, models
from jaxssl.augment import views
from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.evaluate import few_shot
from jaxssl.train import checks, optim, skeleton

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


def _check_wandb(config: ml_collections.ConfigDict) -> None:
    """wandb.enabled needs the wandb package: said now, before anything is written."""
    if not config.get("wandb", {}).get("enabled", False):
        return
    try:
        import wandb  # noqa: F401  (only its presence is checked)
    except ImportError:
        raise ConfigError(
            "wandb.enabled=True needs the wandb package, which is not installed: pip install"
            " wandb (or pip install -e '.[wandb]'), or drop --config.wandb.enabled=True"
        ) from None
    if not _wandb_can_log():
        raise ConfigError(
            "wandb.enabled=True but W&B has no API key on this machine: run `wandb login`, set"
            " WANDB_API_KEY, or WANDB_MODE=offline to log locally (upload later with wandb sync)"
        )


def _wandb_can_log() -> bool:
    """Offline / disabled mode, WANDB_API_KEY, or a netrc entry for the W&B host."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return True
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host.hostname or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_workdir(workdir: str | None) -> None:
    """A workdir must be a directory this process can create or write in (local paths)."""
    if not workdir:
        raise ConfigError("--workdir is empty: pass a directory, e.g. --workdir runs/my_run")
    if "://" in workdir:  # gs:// and other remote paths: checked by their first write
        return
    path = os.path.abspath(os.path.expanduser(workdir))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(
            f"--workdir={workdir} is a file, not a directory: pass a directory path (it is"
            " created if missing)"
        )
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(
            f"--workdir={workdir}: {existing} is a file, so the directory cannot be created:"
            " pass another path"
        )
    try:  # os.access says yes to root everywhere: try it (in the parent, not the workdir)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ConfigError(
            f"--workdir={workdir}: cannot write in {existing} ({e.strerror}): pass a directory"
            " you can write to"
        ) from None


def _check_builds(
    config: ml_collections.ConfigDict, method: methods.Method, info: sources.DatasetInfo
) -> None:
    """Traces the method's init on two examples (shapes only, nothing compiled or computed):
    a model.* / method.* value of the wrong kind fails here, before the workdir is touched."""
    batch = skeleton.sample_batch(sources.get_source(config.dataset, config.dataset.train_split))
    try:
        params, model_state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    except ConfigError:
        raise
    except Exception as e:  # whatever the model code raises on a bad value
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"model {config.model.name!r} / method {config.method.name!r} cannot be built from"
            f" this config ({type(e).__name__}: {first}): check the model.* and method.* values"
        ) from None
    if not (config.eval.get("enabled", True) and info.num_classes is not None):
        return  # no kNN / probe will read eval.feature
    try:
        features = jax.eval_shape(method.encode, params, model_state, batch)
    except Exception:  # a method whose encode needs more: its evaluation reports it
        return
    if config.eval.feature not in features:
        raise ConfigError(
            f"eval.feature={config.eval.feature!r} is not a feature of {config.model.name}: use"
            f" one of {', '.join(sorted(features))}"
        )


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
    if "eval_every" in config:
        _positive_int(config, "eval_every", allow_zero=True)
    _check_wandb(config)
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
    if job in _FINETUNE_JOBS[:2] and info.image_shape is not None and info.num_classes is None:
        raise ConfigError(
            f"job={job} needs labels and {config.dataset.name} has none (no class folders):"
            " use DIR/train/CLASS/ and DIR/val/CLASS/ folders, or job=embed"
        )
    if "augment" in config and info.image_shape is not None:
        try:
            views.default_config(config.augment.recipe)
            views.check_config(config.augment, info.image_shape[-1])
        except ValueError as e:
            raise ConfigError(f"augment: {e}") from None
        except (IndexError, TypeError) as e:  # a range given as one number ...
            raise ConfigError(
                f"augment: {type(e).__name__}: {e}: the ranges (crop_scale, crop_ratio,"
                " blur_sigma) take two numbers, e.g. --config.augment.crop_scale='(0.5, 1.0)'"
            ) from None
    n_train = info.split_sizes["train"]
    if batch > n_train:
        unit = (
            f"windows of dataset.seq_len={info.seq_len} tokens"
            if info.seq_len is not None
            else "examples"
        )
        fix = " or dataset.seq_len, or use more text" if info.seq_len is not None else ""
        raise ConfigError(
            f"batch_size={batch} is larger than the {n_train} {unit} of split "
            f"{config.dataset.train_split!r} of {config.dataset.name}: lower "
            f"--config.batch_size (at most {n_train}){fix}"
        )
    ev = config.eval
    for key in ("eval.batch_size", "eval.knn_k", "eval.probe_batch_size"):
        if key.split(".")[1] in ev:
            _positive_int(config, key)
    size = config.dataset.get("image_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ConfigError(
            f"dataset.image_size={size!r} must be a positive integer (or unset): e.g."
            " --config.dataset.image_size=32"
        )
    labelled = info.num_classes is not None or info.image_shape is None  # text: own eval
    if labelled and ev.get("enabled", True) and info.split_sizes.get("test", 1) == 0:
        raise ConfigError(
            f"split {config.dataset.test_split!r} of {config.dataset.name} is empty, so there is"
            " nothing to evaluate on: set --config.dataset.test_split to a split with examples"
            " or --config.eval.enabled=False"
        )
    if ev.get("enabled", True) and ev.batch_size % n_dev:
        raise ConfigError(
            f"eval.batch_size={ev.batch_size} is not divisible by the {n_dev} devices: "
            f"use a multiple of {n_dev}"
        )
    if ev.get("enabled", True):
        try:
            few_shot.check_config(ev)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if job == "pretrain":
        # Building the method is cheap (no tracing) and runs each method's own checks.
        try:
            method = methods.get_method(config)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"method.name={config.method.name!r}: {e}") from None
        _check_builds(config, method, info)
    checks.validate_training(config)
    if job in _FINETUNE_JOBS:
        from jaxssl.finetune import checks as finetune_checks  # imports models and methods

        finetune_checks.validate_job(config)
    if job == "export":
        from jaxssl.finetune import export  # its formats need optional packages

        export.check_config(config)
