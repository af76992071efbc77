"""Two processes on 127.0.0.1 (jax.distributed, 4 CPU devices each) equal one 8-device process."""

import json
import shlex
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxssl import methods
from jaxssl import sharding as mesh_lib
from jaxssl.data import pipeline, sources
from jaxssl.train import optim, skeleton
from jaxssl.train import step as step_lib
from jaxssl.train.checkpoint import Checkpointer

from .helpers import ROOT
from .test_fault_tolerance import TOTAL, cache_env, cli_overrides, run_config  # noqa: F401

STEPS = TOTAL  # the fault-tolerance config: the in-process reference reuses its compile
EARLY = 4  # compared tightly; after STEPS steps cross-process reduction order drifts ~1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cache_env):  # noqa: F811 (the imported fixture)
    data_dir = str(tmp_path_factory.mktemp("data"))
    config = run_config(data_dir)
    config.checkpoint_every = EARLY
    config.keep_checkpoints = TOTAL // EARLY  # keep step EARLY for the tight comparison
    sources.get_source(config.dataset, "train")  # prepare the data once, before both start
    workdir = tmp_path_factory.mktemp("multihost")
    port = _free_port()
    env = dict(cache_env, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    procs = [
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
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-4000:]
    return config, workdir, outs


def _reference_params(config, like_mesh):
    """One process, 8 devices, fed the global batch the two processes assemble."""
    source = sources.get_source(config.dataset, "train")
    # Process p holds rows [p*B/2, (p+1)*B/2) of the global batch: its own grain shard.
    shards = [
        pipeline.train_iterator(
            source,
            global_batch_size=config.batch_size,
            seed=config.seed,
            shard_index=i,
            shard_count=2,
        )
        for i in range(2)
    ]
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
        local = [next(it) for it in shards]
        batch = {k: np.concatenate([b[k] for b in local]) for k in local[0]}
        state, _ = step(state, mesh_lib.to_global_batch(batch, like_mesh))
        if i in (EARLY, STEPS):
            at[i] = jax.device_get((state.params, state.model_state))
    return at, like


def test_two_processes_equal_one_process(two_process_run):
    config, workdir, _ = two_process_run
    expected, like = _reference_params(config, mesh_lib.make_mesh())
    ckpt = Checkpointer(workdir / "checkpoints", async_save=False)
    assert ckpt.latest_step() == STEPS and EARLY in ckpt.all_steps()
    # Tight after a few steps; looser after all of them (a wrong shard or batch order
    # differs by ~learning_rate per step, far above either tolerance).
    for step, rtol, atol in ((EARLY, 1e-4, 1e-5), (STEPS, 1e-2, 1e-4)):
        got = ckpt.restore(step, like, None)
        got = jax.device_get((got.params, got.model_state))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected[step]), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)
    ckpt.close()


def test_only_process_zero_writes_logs(two_process_run):
    _, workdir, outs = two_process_run
    steps = [
        json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(4, STEPS + 1, 4))  # once each, not once per process
    assert len(list(workdir.glob("events.out.tfevents.*"))) == 1
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["devices"] == 8 and summary["steps"] == STEPS
    # Both processes saved their own grain iterator position.
    assert sorted(
        p.name for p in (workdir / "checkpoints" / str(STEPS) / "data").glob("*.json")
    ) == [
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]
    assert "pretrain" not in outs[1]  # process 1 shows no progress bar


def _launch(script, *args):
    return subprocess.run(
        ["bash", str(ROOT / "launch" / script), *args], capture_output=True, text=True, timeout=60
    )


def test_tpu_vm_dry_run_prints_the_exact_commands():
    proc = _launch(
        "tpu_vm.sh",
        "--name",
        "ssl-v4",
        "--zone",
        "us-central2-b",
        "--accelerator",
        "v4-32",
        "--config",
        "configs/simclr_digits.py",
        "--workdir",
        "gs://bucket/runs/a",
        "--results",
        "runs/a",
        "--queued",
        "--spot",
        "--dry-run",
        "--",
        "--config.batch_size=4096",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == (
        "gcloud compute tpus queued-resources create ssl-v4 --node-id ssl-v4 --zone "
        "us-central2-b --accelerator-type v4-32 --runtime-version tpu-ubuntu2204-base --spot"
    )
    run = [shlex.split(x) for x in lines if "jaxssl.main" in x]
    assert len(run) == 1 and run[0][:9] == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "ssh",
        "ssl-v4",
        "--zone",
        "us-central2-b",
        "--worker=all",
    ]
    assert run[0][-1] == (
        "cd ~/jaxssl && python3 -m jaxssl.main --config=configs/simclr_digits.py "
        "--workdir=gs://bucket/runs/a --config.batch_size=4096"
    )
    install = [shlex.split(x) for x in lines if "pip" in x]  # on every worker
    assert len(install) == 1 and "--worker=all" in install[0]
    assert "pip install -q -e ~/jaxssl" in install[0][-1]
    assert lines[-1] == (
        "gcloud compute tpus queued-resources delete ssl-v4 --zone us-central2-b --force --quiet"
    )
    order = [
        next(i for i, x in enumerate(lines) if key in x)
        for key in ("create", "tpu-vm scp", "jaxssl.main", "gsutil", "delete")
    ]
    assert order == sorted(order)


def test_tpu_vm_refuses_a_local_workdir_on_a_pod_and_missing_flags():
    pod = _launch(
        "tpu_vm.sh",
        "--name",
        "n",
        "--zone",
        "z",
        "--accelerator",
        "v5litepod-16",
        "--config",
        "c.py",
        "--workdir",
        "/tmp/local",
        "--dry-run",
    )
    assert pod.returncode == 2 and "must be gs://" in pod.stderr
    missing = _launch("tpu_vm.sh", "--zone", "z", "--dry-run")
    assert missing.returncode == 2 and "--name is required" in missing.stderr


def test_slurm_dry_run_prints_the_batch_script():
    proc = _launch(
        "slurm.sh",
        "--nodes",
        "2",
        "--gpus-per-node",
        "8",
        "--partition",
        "gpu",
        "--config",
        "configs/simclr_digits.py",
        "--workdir",
        "/shared/runs/a",
        "--dry-run",
        "--",
        "--config.batch_size=1024",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --signal=TERM@120",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
    ):
        assert line in out.splitlines()
    srun = next(x for x in out.splitlines() if x.startswith("srun"))
    assert shlex.split(srun)[2:] == [
        "python3",
        "-m",
        "jaxssl.main",
        "--config=configs/simclr_digits.py",
        "--workdir=/shared/runs/a",
        "--config.batch_size=1024",
    ]
    script = out.split("<<'SBATCH'\n", 1)[1].rsplit("SBATCH", 1)[0]
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
