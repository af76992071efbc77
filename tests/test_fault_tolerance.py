"""Faults survived: SIGTERM, kill -9, damaged checkpoints, NaNs, a held workdir, a changed config.

The subprocess runs share a persistent compilation cache with the in-process reference run,
so the three CLI runs compile nothing new (and run the very same executable).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import api, jobs, methods
from jaxssl import sharding as mesh_lib
from jaxssl.config import ConfigError
from jaxssl.data import pipeline, sources
from jaxssl.train import optim, pretrain, resume, skeleton
from jaxssl.train import step as step_lib
from jaxssl.train.checkpoint import QUARANTINE, Checkpointer
from jaxssl.train.fingerprint import tree_fingerprint
from jaxssl.train.lock import WorkdirLock, WorkdirLockedError
from jaxssl.train.loop import NonFiniteError, train_loop
from jaxssl.train.writers import MetricWriter

from .helpers import ROOT, tiny_simclr_config

TOTAL, EVERY = 40, 4


def cli_overrides(config) -> list[str]:
    """The CLI flags that turn configs/simclr_digits.py into `config` (tiny_simclr_config)."""
    flat = {
        "dataset.data_dir": config.dataset.data_dir,
        "batch_size": config.batch_size,
        "total_steps": config.total_steps,
        "log_every": config.log_every,
        "checkpoint_every": config.checkpoint_every,
        "keep_checkpoints": config.keep_checkpoints,
        "model.widths": tuple(config.model.widths),
        "method.proj_hidden_dims": tuple(config.method.proj_hidden_dims),
        "method.proj_dim": config.method.proj_dim,
        "augment.image_size": config.augment.image_size,
        "optimizer.warmup_steps": config.optimizer.warmup_steps,
        "eval.enabled": config.eval.enabled,
        "eval.probe_steps": config.eval.probe_steps,
    }
    return [f"--config.{k}={v}" for k, v in flat.items()]


def run_config(data_dir: str):
    config = tiny_simclr_config(data_dir)
    config.total_steps, config.log_every, config.checkpoint_every = TOTAL, EVERY, EVERY
    config.eval.enabled = False
    return config


@pytest.fixture(scope="module")
def cache_env():
    """The environment for subprocesses: the session's compilation cache (tests/conftest.py)."""
    return dict(os.environ)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_env):
    """An uninterrupted in-process run: its summary and workdir (checkpoints every 4 steps)."""
    data_dir = str(tmp_path_factory.mktemp("data"))
    workdir = tmp_path_factory.mktemp("reference")
    config = run_config(data_dir)
    summary = pretrain.run(config, str(workdir))
    return config, summary, workdir


def _start(config, workdir, env):
    cmd = [
        sys.executable,
        "-m",
        "jaxssl.main",
        f"--config={ROOT}/configs/simclr_digits.py",
        f"--workdir={workdir}",
        *cli_overrides(config),
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _steps(workdir) -> list[int]:
    ckpts = workdir / "checkpoints"
    return (
        sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) if ckpts.exists() else []
    )


def _wait_for_checkpoint_after(proc, workdir, step: int) -> None:
    deadline = time.time() + 240
    while not any(s > step for s in _steps(workdir)):
        assert proc.poll() is None, f"run ended early:\n{proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, "no new checkpoint within 240 s"
        time.sleep(0.01)


def test_sigterm_then_kill9_then_resume_is_bit_identical(reference, tmp_path, cache_env):
    config, ref_summary, _ = reference
    workdir = tmp_path / "interrupted"
    # 1) SIGTERM after the first checkpoint: finishes the step, checkpoints, exits 0.
    proc = _start(config, workdir, cache_env)
    _wait_for_checkpoint_after(proc, workdir, 0)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "stopped by SIGTERM after step" in out and "Resume with the same command" in out
    stopped = _steps(workdir)[-1]
    assert 0 < stopped < TOTAL, "SIGTERM came too late to test anything"
    assert not (workdir / "summary.json").exists()
    # 2) Same command; kill -9 once it has written a newer checkpoint (maybe mid-save).
    proc = _start(config, workdir, cache_env)
    _wait_for_checkpoint_after(proc, workdir, stopped)
    proc.kill()
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGKILL
    assert f"resuming from step {stopped}" in out
    killed_at = _steps(workdir)[-1]
    assert stopped < killed_at < TOTAL, "the kill came too late to test anything"
    # 3) Same command again: resumes (taking over the dead run's lock) and finishes.
    proc = _start(config, workdir, cache_env)
    out = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "took over a stale lock" in out
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == TOTAL
    assert summary["params_fingerprint"] == ref_summary["params_fingerprint"]


def test_cli_run_on_jaxssls_heap_setting_ends_identical(reference, tmp_path, cache_env):
    """The CLI on jaxssl's one malloc arena (the tests otherwise run on the system malloc),
    compiling its steps into an empty cache and settling the heap after the first step
    (train/heap.py): the run ends bit-identical to the reference, each step logged once."""
    config, ref_summary, _ = reference
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {k: v for k, v in cache_env.items() if k != "JAXSSL_SYSTEM_MALLOC"}
    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    workdir = tmp_path / "heap"
    proc = _start(config, workdir, env)
    out = proc.communicate(timeout=240)[0]
    assert proc.returncode == 0, out[-3000:]
    steps = [r["step"] for r in map(json.loads, open(workdir / "metrics.jsonl")) if "loss" in r]
    assert steps == list(range(EVERY, TOTAL + 1, EVERY))
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["params_fingerprint"] == ref_summary["params_fingerprint"]


def _like_state(config):
    """Abstract state (shapes, dtypes, shardings) and a fresh iterator: nothing compiles."""
    source = sources.get_source(config.dataset, "train")
    method = methods.get_method(config)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    mesh = mesh_lib.make_mesh(jax.devices()[:1])
    batch = skeleton.sample_batch(source)
    shapes = jax.eval_shape(lambda: step_lib.init_state(method, tx, config.seed, batch, mesh))
    like = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=mesh_lib.replicated(mesh)),
        shapes,
    )
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=config.seed)
    return like, it


@pytest.mark.parametrize("damage", ["truncate", "missing_item"])
def test_damaged_latest_checkpoint_falls_back_and_keeps_files(reference, tmp_path, damage):
    config, _, ref_workdir = reference
    ckpt_dir = tmp_path / "checkpoints"
    shutil.copytree(ref_workdir / "checkpoints", ckpt_dir)
    steps = _steps(tmp_path)
    latest, previous = steps[-1], steps[-2]
    bad = ckpt_dir / str(latest)
    if damage == "truncate":
        for f in (bad / "state").rglob("*"):
            if f.is_file() and "/d/" in str(f):
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    else:
        shutil.rmtree(bad / "state")
    files_before = sorted(p.relative_to(bad) for p in bad.rglob("*"))
    like, it = _like_state(config)
    ckpt = Checkpointer(ckpt_dir, async_save=False)
    state, step = ckpt.restore_latest(like, it)
    assert step == previous and int(state.step) == previous
    moved = tmp_path / QUARANTINE / str(latest)
    assert sorted(p.relative_to(moved) for p in moved.rglob("*")) == files_before
    assert ckpt.latest_step() == previous  # the next save can reuse the bad step's number
    good = Checkpointer(ref_workdir / "checkpoints", async_save=False)
    expected = good.restore(previous, like, None)
    assert tree_fingerprint(state) == tree_fingerprint(expected)
    ckpt.close()
    good.close()


class _NaNAt(methods.base.Method):
    """Wraps a method; its loss is NaN at one step (a stand-in for a diverging run)."""

    def __init__(self, inner, bad_step):
        super().__init__(inner.config)
        self.inner, self.bad_step = inner, bad_step

    def init(self, rng, batch):
        return self.inner.init(rng, batch)

    def loss(self, params, model_state, batch, rng, step):
        loss, aux = self.inner.loss(params, model_state, batch, rng, step)
        return jnp.where(step == self.bad_step, jnp.nan, loss), aux

    def encode(self, params, model_state, batch):
        return self.inner.encode(params, model_state, batch)


@pytest.fixture(scope="module")
def nan_setup(reference):
    config = run_config(reference[0].dataset.data_dir)
    config.total_steps, config.log_every, config.checkpoint_every = 6, 3, 2
    method = _NaNAt(methods.get_method(config), bad_step=2)  # the 3rd step goes bad
    source = sources.get_source(config.dataset, "train")
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    mesh = mesh_lib.make_mesh(jax.devices()[:1])
    init = step_lib.init_state(method, tx, config.seed, skeleton.sample_batch(source), mesh)
    # One compiled step (with the in-step select) serves both loop modes: what the loop
    # does on a non-finite step depends only on config.skip_nonfinite and the finite flag.
    step = step_lib.jit_train_step(
        step_lib.make_train_step(method, tx, schedule, skip_nonfinite=True), init, mesh
    )
    return config, source, mesh, init, step


def _loop(nan_setup, workdir, skip, delay=0.0):
    config, source, mesh, init, step = nan_setup
    config = config.copy_and_resolve_references()
    config.skip_nonfinite = skip
    config.checkpoint_every = 2 if not skip else 1
    state = jax.tree.map(jnp.copy, init)  # the step donates its input
    it = pipeline.train_iterator(source, global_batch_size=config.batch_size, seed=config.seed)
    if delay:
        it = _slow(it, delay)
    ckpt = Checkpointer(workdir / "checkpoints", keep=10, async_save=False)
    writer = MetricWriter(workdir, config)
    try:
        state = train_loop(state, step, it, config=config, mesh=mesh, ckpt=ckpt, writer=writer)[0]
        return state, ckpt
    finally:
        writer.close()


def _slow(it, delay):
    """The train iterator, taking `delay` seconds per batch (an input-bound run); still the
    grain iterator type, so the checkpoint module saves its position as usual."""
    base = type(it)

    def slow_next(self):
        time.sleep(delay)
        return base.__next__(self)

    it.__class__ = type("Slow" + base.__name__, (base,), {"__next__": slow_next})
    return it


def test_data_wait_fraction_measures_an_input_bound_run(nan_setup, tmp_path):
    """3 logged steps that each wait 0.4 s for data: the logged fraction times the interval
    (from examples_per_s) is the 1.2 s waited, whatever the machine's load makes the steps."""
    _loop(nan_setup, tmp_path / "fast", skip=True)
    _loop(nan_setup, tmp_path / "slow", skip=True, delay=0.4)
    batch = nan_setup[0].batch_size

    def waits(run):  # (fraction, seconds waited) of steps 4-6: compiled
        line = (tmp_path / run / "metrics.jsonl").read_text().splitlines()[1]
        m = json.loads(line)
        return m["data_wait_fraction"], m["data_wait_fraction"] * 3 * batch / m["examples_per_s"]

    (fast, fast_s), (slow, slow_s) = waits("fast"), waits("slow")
    # At least the sleeps; at most those plus 0.5 s for three in-memory batches and the clock.
    assert 1.2 <= slow_s < 1.7, slow_s
    assert fast_s < 0.5 and fast < slow, (fast, slow)


def test_nonfinite_stops_naming_the_step_and_keeps_last_good(nan_setup, tmp_path):
    with pytest.raises(NonFiniteError, match="at step 3") as info:
        _loop(nan_setup, tmp_path, skip=False)
    assert "skip_nonfinite" in str(info.value)
    assert _steps(tmp_path) == [2]  # step 3 was bad: nothing at or after it was saved


def test_skip_nonfinite_leaves_state_unchanged_and_continues(nan_setup, tmp_path):
    final, ckpt = _loop(nan_setup, tmp_path, skip=True)
    assert int(final.step) == 6
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(final.params)))
    like = nan_setup[3]
    at = {s: ckpt.restore(s, like, None) for s in (2, 3, 4)}
    ckpt.close()

    def trained(state):
        return tree_fingerprint((state.params, state.opt_state, state.model_state))

    # The NaN step 3 changed nothing but the step counter; step 4 trained normally.
    assert int(at[3].step) == 3
    assert trained(at[3]) == trained(at[2]) != trained(at[4])
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["finite"], r["skipped_nonfinite"]) for r in records] == [
        (3, 0.0, 1),
        (6, 1.0, 1),
    ]


def test_live_lock_refused_and_stale_lock_taken_over(tmp_path):
    held = WorkdirLock(tmp_path)
    held.acquire()
    with pytest.raises(WorkdirLockedError, match=f"pid {os.getpid()} on host"):
        WorkdirLock(tmp_path).acquire()
    # jobs.run turns it into a clear message and exit code 3, before building anything.
    config = tiny_simclr_config(str(tmp_path / "data"))
    with pytest.raises(SystemExit) as info:
        jobs.run(config, str(tmp_path))
    assert info.value.code == 3
    held.release()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "jaxssl.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname()[1]}))
    taker = WorkdirLock(tmp_path)
    taker.acquire()
    assert taker.took_over["pid"] == dead.pid
    assert json.loads((tmp_path / "jaxssl.lock").read_text())["pid"] == os.getpid()
    taker.release()
    assert not (tmp_path / "jaxssl.lock").exists()


def test_conflicting_config_refused_then_fresh_start_beside_it(reference, tmp_path):
    config, _, ref_workdir = reference
    workdir = tmp_path / "w"
    shutil.copytree(ref_workdir, workdir)
    changed = config.copy_and_resolve_references()
    changed.model.widths = (8, 32)
    changed.method.proj_dim = 4
    changed.total_steps = 100  # compatible: extends the run
    with pytest.raises(ConfigError) as info:
        resume.resolve_workdir(changed, workdir)
    msg = str(info.value)
    assert "model.widths" in msg and "method.proj_dim" in msg and "total_steps" not in msg
    assert "fresh_start" in msg
    with pytest.raises(SystemExit) as exit_info:  # the CLI path: exit 2, nothing compiled
        jobs.run(changed, str(workdir))
    assert exit_info.value.code == 2
    assert resume.resolve_workdir(config, workdir) == workdir  # the same config resumes
    changed.fresh_start = True
    fresh = resume.resolve_workdir(changed, workdir)
    assert fresh == workdir / "fresh-1"
    assert _steps(workdir) == _steps(ref_workdir)  # the old run is untouched


def test_keys_a_saved_config_left_out_resume_as_their_defaults():
    # Runs whose config left method.online_probe out ran with the probe on (its default).
    old = {"method": {"name": "simclr"}, "model": {"name": "cnn_small"}}
    declared = {"method": {"name": "simclr", "online_probe": True}, "model": {"name": "cnn_small"}}
    assert resume.conflicting_keys(old, declared) == []
    assert resume.conflicting_keys(declared, old) == []
    off = {"method": {"name": "simclr", "online_probe": False}, "model": {"name": "cnn_small"}}
    assert resume.conflicting_keys(old, off) == ["method.online_probe"]
    assert resume.conflicting_keys(declared, off) == ["method.online_probe"]
    # Other keys a saved config lacks still conflict.
    assert resume.conflicting_keys(
        old, {**declared, "model": {"name": "cnn_small", "width": 8}}
    ) == ["model.width"]
    # A block option the loader fills in (method.corruption) compares key by key.
    current = api.load_config(str(ROOT / "configs" / "causal_lm_pydoc.py")).to_dict()
    saved = {**current, "method": {k: v for k, v in current["method"].items() if k != "corruption"}}
    assert "corruption" in current["method"]
    assert resume.conflicting_keys(saved, current) == []
    current["method"]["corruption"]["token_noise"] = 0.1
    assert resume.conflicting_keys(saved, current) == ["method.corruption.token_noise"]
    # So does a base key added after the run (dataset.num_workers: 0, the earlier behaviour).
    older = {**old, "dataset": {"name": "digits"}}
    newer = {**declared, "dataset": {"name": "digits", "num_workers": 0}}
    assert resume.conflicting_keys(older, newer) == []
    newer["dataset"]["num_workers"] = 2
    assert resume.conflicting_keys(older, newer) == ["dataset.num_workers"]


def test_guard_records_signal_and_restores_handlers():
    from jaxssl.train.signals import PreemptionGuard

    before = signal.getsignal(signal.SIGTERM)
    guard = PreemptionGuard()
    with guard:
        with guard:  # re-entered by train_loop inside pretrain.run
            assert not guard.should_stop(1)
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the main thread right away
            assert guard.should_stop(2) and guard.signal_name == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == guard._handle
    assert signal.getsignal(signal.SIGTERM) == before
