"""The generic train step: 1 device and 8 devices agree (learning on real data: test_learns)."""

import jax
import numpy as np
import pytest

from jaxssl import methods
from jaxssl import sharding as mesh_lib
from jaxssl.data import sources
from jaxssl.train import optim
from jaxssl.train import step as step_lib

from .helpers import tiny_simclr_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    config = tiny_simclr_config(str(tmp_path_factory.mktemp("data")))
    source = sources.get_source(config.dataset, "train")
    images = np.stack([source[i]["image"] for i in range(config.batch_size)])
    labels = np.array([source[i]["label"] for i in range(config.batch_size)], np.int32)
    return config, {"image": images, "label": labels}


def _run_steps(config, batch, devices, n_steps=2):
    mesh = mesh_lib.make_mesh(devices)
    method = methods.get_method(config)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, batch, mesh)
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, mesh)
    for _ in range(n_steps):  # the first warmup step has lr 0: take a second one
        state, metrics = step(state, mesh_lib.to_global_batch(batch, mesh))
    return jax.device_get(state), jax.device_get(metrics)


def test_one_device_equals_eight_devices(setup):
    config, batch = setup
    assert jax.device_count() == 8
    state1, metrics1 = _run_steps(config, batch, jax.devices()[:1])
    state8, metrics8 = _run_steps(config, batch, jax.devices())
    np.testing.assert_allclose(metrics1["loss"], metrics8["loss"], rtol=1e-5)
    # Batch-norm statistics and negatives span the global batch in both cases.
    for a, b in zip(jax.tree.leaves(state1), jax.tree.leaves(state8), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert int(state8.step) == 2
    moved = [
        np.abs(a - b).max()
        for a, b in zip(
            jax.tree.leaves(state1.params),
            jax.tree.leaves(_init_params(config, batch)),
            strict=True,
        )
    ]
    assert max(moved) > 1e-4  # the compared params really were updated


def _init_params(config, batch):
    mesh = mesh_lib.make_mesh(jax.devices()[:1])
    method = methods.get_method(config)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    return jax.device_get(step_lib.init_state(method, tx, config.seed, batch, mesh).params)


def test_the_init_compiled_at_o1_equals_the_default_o3_compile(setup, monkeypatch):
    """init_state compiles its once-run program with xla_cpu.run_once_options (LLVM -O1: a
    faster compile than XLA's default -O3); the params must be the same bits."""
    from jaxssl.train import xla_cpu

    monkeypatch.setenv("XLA_FLAGS", "")
    assert xla_cpu.run_once_options() == {"xla_backend_optimization_level": 1}
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")  # the user's: kept
    assert xla_cpu.run_once_options() is None
    config, batch = setup
    params, asked = {}, []
    for level in (1, 3):
        monkeypatch.setattr(
            xla_cpu,
            "run_once_options",
            lambda level=level: asked.append(level) or {"xla_backend_optimization_level": level},
        )
        params[level] = _init_params(config, batch)
    assert asked == [1, 3]  # init_state compiled with the options it was given
    for a, b in zip(jax.tree.leaves(params[1]), jax.tree.leaves(params[3]), strict=True):
        np.testing.assert_array_equal(a, b)
