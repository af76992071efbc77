"""Common config keys, their defaults, and validation before anything compiles.

Every key carries its meaning in a trailing comment: `jaxssl keys configs/NAME.py` prints
them (jaxssl/cli.py reads these comments), so no key is documented only in code.
"""

import ml_collections


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def base_config() -> ml_collections.ConfigDict:
    """Keys every experiment config has; experiment files override what they need."""
    placeholder = ml_collections.config_dict.placeholder  # None until set, typed
    c = ml_collections.ConfigDict()
    c.job = "pretrain"  # what runs: `jaxssl list` shows the jobs (pretrain, finetune, embed ...)
    c.seed = 0  # parameter init, data order and augmentation keys
    c.init_from = ""  # a trained run's workdir whose encoder starts this run; empty: random init
    c.batch_size = 256  # global, over all devices and hosts
    c.total_steps = 1000  # optimizer steps; 0 evaluates the randomly initialised encoder
    c.log_every = 50  # steps between metric records (metrics.jsonl, TensorBoard, W&B)
    c.checkpoint_every = 500  # steps between orbax checkpoints (one is always written at the end)
    c.keep_checkpoints = 3  # newest checkpoints kept in workdir/checkpoints
    c.eval_every = 0  # steps between evaluations during training (kNN + probe); 0: only at the end
    c.skip_nonfinite = False  # True: a NaN/inf step leaves the state unchanged and training goes on
    c.fresh_start = False  # True: a conflicting checkpoint is left alone, run in workdir/fresh-N
    c.precision = "float32"  # encoder compute dtype (float32 | bfloat16); params/opt state stay f32
    c.remat = False  # recompute encoder blocks in the backward pass (less memory, more compute)
    c.compile_cache_dir = placeholder(str)  # XLA compile cache; unset: ~/.cache/jaxssl/xla, "": off
    c.mesh = ml_collections.ConfigDict(
        {
            "fsdp": 1,  # devices each param/optimizer leaf is split over (1: pure data parallel)
            "fsdp_min_size": 2**16,  # leaves with fewer elements stay replicated
        }
    )  # the (data, fsdp) device mesh of jaxssl/sharding.py
    c.distributed = ml_collections.ConfigDict(
        dict(
            enabled="auto",  # auto: join TPU VM / Slurm / MPI peers when found | on | off
            coordinator_address="",  # HOST:PORT of process 0 when peers are not found by themselves
            num_processes=0,  # processes in the job (0: found by jax.distributed)
            process_id=-1,  # this process's index (-1: found by jax.distributed)
        )
    )  # settings of jaxssl/train/distributed.py

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "digits"  # digits, pydoc, npz:FILE, folder:DIR, text:FILE, a tfds name ...
    c.dataset.data_dir = placeholder(str)  # tfds data dir (default: ~/tensorflow_datasets)
    c.dataset.train_split = "train"  # split trained on (and the kNN / probe training set)
    c.dataset.test_split = "test"  # split evaluated on (folder: test/ or val/, whichever exists)
    c.dataset.image_size = placeholder(int)  # N: variable-size images become N x N on the host
    c.dataset.resize = "whole"  # whole: longer side to N (crops see it all); crop: centre NxN
    c.dataset.num_workers = 0  # grain worker processes reading batches (0: 8 threads in-process)

    c.model = ml_collections.ConfigDict()
    c.model.name = "cnn_small"  # encoder: `jaxssl list` shows the registered models

    c.method = ml_collections.ConfigDict()
    c.method.name = "simclr"  # self-supervised objective: `jaxssl list` shows the methods

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"  # adamw | lars | sgd
    c.optimizer.learning_rate = 1e-3  # peak learning rate (after lr_scaling)
    c.optimizer.lr_scaling = "none"  # none | linear | sqrt: scale learning_rate by batch_size / 256
    c.optimizer.weight_decay = 1e-4  # decoupled weight decay
    c.optimizer.warmup_steps = 100  # linear warmup from 0 to the peak learning rate
    c.optimizer.schedule = "cosine"  # cosine | constant, after the warmup
    c.optimizer.end_lr_fraction = 0.0  # cosine: final learning rate as a fraction of the peak
    c.optimizer.grad_clip_norm = 0.0  # clip gradients to this global norm; 0: no clipping

    c.eval = ml_collections.ConfigDict()
    c.eval.enabled = True  # kNN + linear probe on the frozen encoder after (and during) training
    c.eval.batch_size = 256  # feature-extraction batch (global)
    c.eval.feature = "pooled"  # encoder feature evaluated (pooled, feature_map, stage1 ...)
    c.eval.knn_k = 20  # neighbours of the weighted cosine kNN
    c.eval.knn_temperature = 0.07  # kNN vote temperature (InstDisc / DINO)
    c.eval.probe_steps = 2000  # steps of the offline linear probe
    c.eval.probe_batch_size = 1024  # linear-probe batch
    c.eval.probe_lr = 1e-2  # linear-probe AdamW learning rate
    c.eval.probe_weight_decay = 1e-4  # linear-probe weight decay
    c.eval.fewshot_shots = (1, 5, 10, 25)  # few-shot ridge probe, examples per class; () skips it
    c.eval.fewshot_l2_grid = (2.0**-4, 1.0, 2.0**4, 2.0**8, 2.0**12)  # ridge l2 candidates
    c.eval.fewshot_seeds = 3  # draws of the n-shot set; their test top-1 is averaged
    c.eval.fewshot_val_per_class = 10  # held-out train examples per class that pick the l2

    c.wandb = ml_collections.ConfigDict()
    c.wandb.enabled = False  # True: also log to Weights & Biases (pip install wandb)
    c.wandb.project = "jaxssl"  # W&B project
    c.wandb.name = placeholder(str)  # W&B run name (default: W&B's)
    return c
