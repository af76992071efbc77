"""Config validation of the finetune / predict / embed jobs, before anything compiles."""

import re

import jax
import jax.numpy as jnp
import ml_collections

from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.finetune import partition
from jaxssl.finetune.job import num_outputs
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import checkpoint

TASKS = ("classification", "regression")


def _regexes(key: str, patterns) -> None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise ConfigError(f"{key}: {pattern!r} is not a regular expression ({e})") from None


def _check_block(ft: ml_collections.ConfigDict) -> None:
    if ft.mode not in partition.MODES:
        raise ConfigError(
            f"finetune.mode={ft.mode!r} is unknown: use one of {', '.join(partition.MODES)}"
        )
    if ft.get("task", "classification") not in TASKS:
        raise ConfigError(f"finetune.task={ft.task!r}: use one of {', '.join(TASKS)}")
    if not 0.0 < ft.label_fraction <= 1.0:
        raise ConfigError(
            f"finetune.label_fraction={ft.label_fraction} must be in (0, 1], e.g. 0.01 or 0.1"
        )
    if not 0.0 <= ft.get("label_smoothing", 0.0) < 1.0:
        raise ConfigError(f"finetune.label_smoothing={ft.label_smoothing} must be in [0, 1)")
    if not 0.0 < ft.get("layer_decay", 1.0) <= 1.0:
        raise ConfigError(f"finetune.layer_decay={ft.layer_decay} must be in (0, 1]")
    if min(ft.get("l1", 0.0), ft.get("l2", 0.0)) < 0:
        raise ConfigError("finetune.l1 and finetune.l2 must be >= 0")
    if ft.mode == "partial" and ft.get("trainable_blocks", 0) < 1:
        raise ConfigError("finetune.trainable_blocks must be >= 1 in partial mode")
    if ft.mode == "lora" and (ft.lora.rank < 1 or ft.lora.alpha <= 0):
        raise ConfigError("finetune.lora.rank must be >= 1 and finetune.lora.alpha > 0")
    if ft.mode == "adalora":
        _check_adalora(ft.adalora)
    if ft.mode == "adapter" and ft.adapter.bottleneck < 1:
        raise ConfigError("finetune.adapter.bottleneck must be >= 1")
    for i, rule in enumerate(ft.get("rules", ())):
        if len(rule) != 2 or not (
            rule[1] == partition.FROZEN or isinstance(rule[1], int | float) and rule[1] > 0
        ):
            raise ConfigError(
                f"finetune.rules[{i}]={rule!r}: each rule is (regex, 'frozen' or lr multiplier > 0)"
            )
        _regexes(f"finetune.rules[{i}]", [rule[0]])
    for key in ("lora.target_patterns", "adalora.target_patterns", "adapter.target_patterns"):
        block = ft.get(key.split(".")[0]) or {}
        _regexes(f"finetune.{key}", block.get("target_patterns", ()) or ())
    for key in ("block_regex", "post_regex"):
        if key in ft:
            _regexes(f"finetune.{key}", [ft[key]])


def _check_adalora(ac: ml_collections.ConfigDict | None) -> None:
    if ac is None:
        raise ConfigError("finetune.mode=adalora needs a finetune.adalora block: see defaults.py")
    if not 1 <= ac.target_rank <= ac.init_rank:
        raise ConfigError(
            f"finetune.adalora: need 1 <= target_rank ({ac.target_rank}) <= init_rank "
            f"({ac.init_rank}); the paper starts at 1.5x the target"
        )
    if ac.alpha <= 0 or ac.delta_t < 1 or ac.orth_weight < 0:
        raise ConfigError("finetune.adalora: alpha > 0, delta_t >= 1 and orth_weight >= 0")
    fractions = (ac.warmup_fraction, ac.final_fraction)
    if min(fractions) < 0 or sum(fractions) >= 1:
        raise ConfigError(
            f"finetune.adalora.warmup_fraction + final_fraction = {sum(fractions)} must be in "
            "[0, 1) (each >= 0): the budget shrinks in between"
        )
    if not (0 <= ac.beta1 < 1 and 0 <= ac.beta2 < 1):
        raise ConfigError("finetune.adalora.beta1 and beta2 must be in [0, 1), e.g. 0.85")


def _abstract_model(config: ml_collections.ConfigDict):
    """(params, model_state) shapes of the fine-tune model, traced with eval_shape only."""
    info = sources.dataset_info(config.dataset)
    try:
        model = FineTuneModel(config, num_outputs(config, info))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None
    if info.seq_len is not None:  # text: token windows, as the text sources yield them
        window = jax.ShapeDtypeStruct((2, info.seq_len), jnp.int32)
        batch = {"tokens": window, "attention_mask": window}
    else:
        batch = {"image": jax.ShapeDtypeStruct((2, *info.image_shape), jnp.uint8)}
    batch["label"] = jax.ShapeDtypeStruct((2,), jnp.int32)
    try:
        return jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
    except ValueError as e:  # e.g. LoRA / adapter patterns matching nothing
        raise ConfigError(f"finetune: {e}") from None


def validate_finetune(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for the first problem of a finetune config."""
    if "finetune" not in config:
        raise ConfigError("config has no `finetune` block: start from configs/finetune_digits.py")
    _check_block(config.finetune)
    run = checkpoint.RunCheckpoint(config.init_from) if config.get("init_from") else None
    params, model_state = _abstract_model(config)
    if run is not None:
        run.check_fits(checkpoint.encoder_subtrees(params, model_state))
        run.close()


def validate_predict(config: ml_collections.ConfigDict) -> None:
    """predict / embed: init_from names a run with a checkpoint (predict: a fine-tune run)."""
    if not config.get("init_from"):
        raise ConfigError(
            f"job={config.job!r} needs --config.init_from=<workdir of a finetune or pretrain run>"
        )
    run = checkpoint.RunCheckpoint(config.init_from)
    run_job = run.config().get("job", "pretrain")
    run.close()
    if config.job == "predict" and run_job != "finetune":
        raise ConfigError(
            f"job=predict needs a fine-tuned run (it has the head), but {config.init_from!r} "
            f"is a {run_job!r} run: use job=embed for encoder features"
        )
    pred = config.get("predict", ml_collections.ConfigDict())
    split = pred.get("split", "test")
    if not isinstance(split, str) or not split:
        raise ConfigError("predict.split must name a dataset split, e.g. 'test'")
    if pred.get("batch_size", 256) % jax.device_count():
        raise ConfigError(
            f"predict.batch_size must be a multiple of the {jax.device_count()} devices"
        )


def validate_job(config: ml_collections.ConfigDict) -> None:
    """Dispatches to the finetune or predict/embed checks."""
    if config.job == "finetune":
        validate_finetune(config)
    else:
        validate_predict(config)
