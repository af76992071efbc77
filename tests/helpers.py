"""Tiny configs shared by tests: small enough to compile in seconds on a CPU."""

import importlib.util
import pathlib

import ml_collections

ROOT = pathlib.Path(__file__).resolve().parents[1]


def file_config(name: str) -> ml_collections.ConfigDict:
    """get_config() of configs/<name>.py, as the file writes it."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def load_config(name: str) -> ml_collections.ConfigDict:
    """file_config with the method options filled in, as the command line's loader does."""
    from jaxssl import methods

    config = file_config(name)
    methods.fill_options(config)
    return config


def tiny_simclr_config(data_dir: str) -> ml_collections.ConfigDict:
    """simclr_digits shrunk: 2-stage CNN, batch 32, a handful of steps."""
    c = load_config("simclr_digits")
    c.dataset.data_dir = data_dir
    c.batch_size = 32
    c.total_steps = 4
    c.log_every = 2
    c.checkpoint_every = 2
    c.model.widths = (8, 16)
    c.method.proj_hidden_dims = (16,)
    c.method.proj_dim = 8
    c.augment.image_size = 8
    c.optimizer.warmup_steps = 1
    c.eval.batch_size = 128
    c.eval.probe_steps = 50
    return c
