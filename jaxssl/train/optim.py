"""Optimizers and learning-rate schedules from the `optimizer` config block."""

import jax
import ml_collections
import optax

OPTIMIZERS = ("lars", "adamw", "sgd")
LR_SCALINGS = ("none", "linear", "sqrt")


def peak_learning_rate(opt_cfg: ml_collections.ConfigDict, batch_size: int) -> float:
    """learning_rate scaled by batch size (SimCLR: linear is lr * B / 256)."""
    scaling = opt_cfg.get("lr_scaling", "none")
    ratio = batch_size / 256
    factor = {"none": 1.0, "linear": ratio, "sqrt": ratio**0.5}[scaling]
    return opt_cfg.learning_rate * factor


def make_schedule(
    opt_cfg: ml_collections.ConfigDict, batch_size: int, total_steps: int
) -> optax.Schedule:
    """Linear warmup then cosine decay (or constant) to end_lr_fraction of the peak."""
    peak = peak_learning_rate(opt_cfg, batch_size)
    warmup = min(opt_cfg.warmup_steps, max(total_steps - 1, 0))
    if opt_cfg.get("schedule", "cosine") == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak)],
            [max(warmup, 1)],
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=peak * opt_cfg.get("end_lr_fraction", 0.0),
    )


def decay_mask(params) -> object:
    """Weight decay and LARS trust ratio on kernels only, not biases or norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(
    opt_cfg: ml_collections.ConfigDict, batch_size: int, total_steps: int, clip: bool = True
) -> optax.GradientTransformation:
    """The optax transformation named by opt_cfg.name, with its schedule.

    clip=False leaves out grad_clip_norm, for a caller that clips the global norm of several
    parameter groups itself (fine-tuning's multi_transform).
    """
    schedule = make_schedule(opt_cfg, batch_size, total_steps)
    wd = opt_cfg.weight_decay
    if opt_cfg.name == "lars":
        tx = optax.lars(
            schedule,
            weight_decay=wd,
            weight_decay_mask=decay_mask,
            trust_ratio_mask=decay_mask,
            momentum=opt_cfg.get("momentum", 0.9),
        )
    elif opt_cfg.name == "adamw":
        tx = optax.adamw(
            schedule,
            b1=opt_cfg.get("b1", 0.9),
            b2=opt_cfg.get("b2", 0.999),
            weight_decay=wd,
            mask=decay_mask,
        )
    elif opt_cfg.name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd, mask=decay_mask),
            optax.sgd(schedule, momentum=opt_cfg.get("momentum", 0.9), nesterov=True),
        )
    else:
        raise ValueError(f"optimizer.name={opt_cfg.name!r}; valid: {', '.join(OPTIMIZERS)}")
    norm = opt_cfg.get("grad_clip_norm", 0.0)
    return optax.chain(optax.clip_by_global_norm(norm), tx) if clip and norm else tx
