"""Common config keys, their defaults, and validation before anything compiles."""

import ml_collections


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def base_config() -> ml_collections.ConfigDict:
    """Keys every experiment config has; experiment files override what they need."""
    c = ml_collections.ConfigDict()
    c.job = "pretrain"
    c.seed = 0
    c.batch_size = 256  # global, over all devices and hosts
    c.total_steps = 1000
    c.log_every = 50
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.skip_nonfinite = False  # True: a NaN/inf step leaves the state unchanged and training goes on
    c.fresh_start = False  # True: a conflicting checkpoint is left alone, run in workdir/fresh-N
    c.precision = "float32"  # encoder compute dtype (float32 | bfloat16); params/opt state stay f32
    c.remat = False  # recompute encoder blocks in the backward pass (less memory, more compute)
    c.mesh = ml_collections.ConfigDict({"fsdp": 1, "fsdp_min_size": 2**16})  # jaxssl/sharding.py
    c.distributed = ml_collections.ConfigDict(
        dict(enabled="auto", coordinator_address="", num_processes=0, process_id=-1)
    )  # settings of jaxssl/train/distributed.py; "auto" finds TPU VM / Slurm peers

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "digits"
    c.dataset.data_dir = ml_collections.config_dict.placeholder(str)
    c.dataset.train_split = "train"
    c.dataset.test_split = "test"

    c.model = ml_collections.ConfigDict()
    c.model.name = "cnn_small"

    c.method = ml_collections.ConfigDict()
    c.method.name = "simclr"

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.lr_scaling = "none"
    c.optimizer.weight_decay = 1e-4
    c.optimizer.warmup_steps = 100
    c.optimizer.schedule = "cosine"
    c.optimizer.end_lr_fraction = 0.0
    c.optimizer.grad_clip_norm = 0.0

    c.eval = ml_collections.ConfigDict()
    c.eval.enabled = True
    c.eval.batch_size = 256
    c.eval.feature = "pooled"
    c.eval.knn_k = 20
    c.eval.knn_temperature = 0.07
    c.eval.probe_steps = 2000
    c.eval.probe_batch_size = 1024
    c.eval.probe_lr = 1e-2
    c.eval.probe_weight_decay = 1e-4

    c.wandb = ml_collections.ConfigDict()
    c.wandb.enabled = False
    c.wandb.project = "jaxssl"
    c.wandb.name = ml_collections.config_dict.placeholder(str)
    return c
