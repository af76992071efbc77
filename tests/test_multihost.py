"""Two processes on 127.0.0.1 (jax.distributed, 4 CPU devices each) equal one 8-device process."""

import json
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxssl import methods
from jaxssl import sharding as mesh_lib
from jaxssl.data import pipeline, sources
from jaxssl.train import optim, pretrain, skeleton
from jaxssl.train import step as step_lib
from jaxssl.train.checkpoint import Checkpointer

from .conftest import FAST_COMPILE
from .helpers import ROOT
from .test_fault_tolerance import TOTAL, cache_env, cli_overrides, run_config  # noqa: F401

STEPS = TOTAL  # the fault-tolerance config: the in-process reference reuses its compile
EARLY = 4  # compared tightly; after STEPS steps cross-process reduction order drifts ~1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(config, workdir, env, port):
    """Starts `python -m jaxssl.main` as processes 0 and 1 of a 2-process run on 127.0.0.1."""
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxssl.main",
                f"--config={ROOT}/configs/simclr_digits.py",
                f"--workdir={workdir}",
                *cli_overrides(config),
                f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                "--config.distributed.num_processes=2",
                f"--config.distributed.process_id={i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(2)
    ]


def _env(cache_env):  # noqa: F811
    flags = f"--xla_force_host_platform_device_count=4 {FAST_COMPILE}"
    return dict(cache_env, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cache_env):  # noqa: F811 (the imported fixture)
    data_dir = str(tmp_path_factory.mktemp("data"))
    config = run_config(data_dir)
    config.checkpoint_every = EARLY
    config.keep_checkpoints = TOTAL // EARLY  # keep step EARLY for the tight comparison
    config.eval.enabled = True  # the evaluation runs across both processes too
    config.eval.probe_steps = 50
    sources.get_source(config.dataset, "train")  # prepare the data once, before both start
    workdir = tmp_path_factory.mktemp("multihost")
    procs = _two_processes(config, workdir, _env(cache_env), _free_port())
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-4000:]
    return config, workdir, outs


def _reference_params(config, like_mesh):
    """One process, 8 devices, fed its own (single-shard) stream: the same global batches."""
    source = sources.get_source(config.dataset, "train")
    stream = pipeline.train_iterator(
        source, global_batch_size=config.batch_size, seed=config.seed, shard_index=0, shard_count=1
    )
    method = methods.get_method(config)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, skeleton.sample_batch(source), like_mesh)
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
    )
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, like_mesh)
    at = {}
    for i in range(1, STEPS + 1):
        state, _ = step(state, mesh_lib.to_global_batch(next(stream), like_mesh))
        if i in (EARLY, STEPS):
            at[i] = jax.device_get((state.params, state.model_state))
    return at, like, method


def test_two_processes_equal_one_process(two_process_run, reference):  # noqa: F811
    config, workdir, _ = two_process_run
    expected, like, method = _reference_params(config, mesh_lib.make_mesh())
    ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
    assert ckpt.latest_step() == STEPS and EARLY in ckpt.all_steps()
    # Tight after a few steps; looser after all of them (a wrong shard or batch order
    # differs by ~learning_rate per step, far above either tolerance).
    for step, rtol, atol in ((EARLY, 1e-4, 1e-5), (STEPS, 1e-2, 1e-4)):
        got = ckpt.restore(step, like, None)
        got = jax.device_get((got.params, got.model_state))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected[step]), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)
    final = ckpt.restore(STEPS, like, None)
    ckpt.close()
    summary = json.loads((workdir / "summary.json").read_text())
    # The 1-process, 8-device CLI-equivalent run of the same config (test_fault_tolerance).
    assert summary["processes"] == 2 and reference[1]["steps"] == STEPS
    # Not bit-identical: XLA:CPU's cross-process all-reduce sums in another order than its
    # in-process one; the data order and keys are identical (the step-4 check above).
    assert summary["params_fingerprint"] != ""
    # The evaluation the two processes ran together equals one process evaluating the same
    # params: features sharded over both, kNN bank split by rows, probe sampled by index.
    from jaxssl.evaluate import protocol

    single = protocol.evaluate_encoder(
        method, final.params, final.model_state, config, mesh_lib.make_mesh()
    )
    for key in ("knn_top1", "linear_probe_top1", "online_probe_test_top1"):
        np.testing.assert_allclose(summary[key], single[key], atol=1.5 / 359)  # <= 1 example


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_env):  # noqa: F811
    """The uninterrupted 1-process run of the same config as two_process_run."""
    config = run_config(str(tmp_path_factory.mktemp("data")))
    workdir = tmp_path_factory.mktemp("one_process")
    return config, pretrain.run(config, str(workdir)), workdir


@pytest.mark.slow  # ~30 s of subprocesses; the 1-process SIGTERM path is fast-tested
def test_sigterm_with_two_processes_checkpoints_the_same_step_and_resumes(
    two_process_run,
    tmp_path,
    cache_env,  # noqa: F811
):
    config, uninterrupted, _ = two_process_run
    config = config.copy_and_resolve_references()
    config.eval.enabled = False
    env, port = _env(cache_env), _free_port()
    procs = _two_processes(config, tmp_path, env, port)
    deadline = time.time() + 300
    while not (tmp_path / "checkpoints" / str(EARLY)).exists():
        assert all(p.poll() is None for p in procs), "a process ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    stopped = re.findall(r"stopped by SIGTERM after step (\d+)", outs[0])
    assert stopped and int(stopped[0]) < STEPS, outs[0][-3000:]
    step = int(stopped[0])
    assert Checkpointer(tmp_path / "checkpoints", async_save=False).latest_step() == step
    # Both processes saved their iterator position at that step.
    data = sorted(p.name for p in (tmp_path / "checkpoints" / str(step) / "data").glob("*.json"))
    assert data == ["process_0-of-2.json", "process_1-of-2.json"]
    resumed = _two_processes(config, tmp_path, env, _free_port())
    outs = [p.communicate(timeout=400)[0] for p in resumed]
    assert [p.returncode for p in resumed] == [0, 0], outs[0][-3000:]
    assert f"resuming from step {step}" in outs[0]
    final = json.loads((tmp_path / "summary.json").read_text())
    # Same params as the uninterrupted 2-process run, bit for bit.
    assert (
        final["params_fingerprint"]
        == json.loads((uninterrupted / "summary.json").read_text())["params_fingerprint"]
    )
