"""A tiny real pre-training run: files written, evaluation in range, resume from checkpoint."""

import json
import subprocess
import sys

import pytest

from jaxssl.train import pretrain
from jaxssl.train.writers import read_metrics

from .helpers import ROOT, tiny_simclr_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Runs 4 steps (checkpoints at 2 and 4), then the same workdir to 6 steps."""
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_simclr_config(str(tmp_path_factory.mktemp("data")))
    first = pretrain.run(config, str(workdir))
    config.total_steps = 6
    second = pretrain.run(config, str(workdir))
    return workdir, first, second


def test_run_writes_all_outputs(finished_run):
    workdir, first, _ = finished_run
    assert (workdir / "config.json").exists()
    assert json.loads((workdir / "config.json").read_text())["method"]["name"] == "simclr"
    assert list(workdir.glob("events.out.tfevents.*"))
    assert (workdir / "plots" / "loss.png").stat().st_size > 0
    summary = json.loads((workdir / "summary.json").read_text())
    for key in ("knn_top1", "linear_probe_top1"):
        assert 0.0 <= summary[key] <= 1.0
    assert first["steps"] == 4
    assert summary["wall_time_s"] > 0


def test_second_run_resumes_instead_of_restarting(finished_run):
    workdir, _, second = finished_run
    assert second["steps"] == 6
    steps = [r["step"] for r in read_metrics(workdir)]
    # The first run logged 2 and 4; the resumed one continued at 6, not from 2 again.
    assert steps == [2, 4, 6]
    ckpts = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert ckpts[-1] == 6 and 4 in ckpts


def test_zero_steps_evaluates_random_init(tmp_path):
    config = tiny_simclr_config(str(tmp_path / "data"))
    config.total_steps = 0
    summary = pretrain.run(config, str(tmp_path / "random"))
    assert summary["steps"] == 0
    assert 0.0 <= summary["knn_top1"] <= 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.batch_size=30", "batch_size=30 is not divisible by the 8 devices"),
        ("--config.model.name=resnet9000", "model.name='resnet9000' is unknown"),
        ("--config.method.name=nope", "method.name='nope' is unknown"),
        ("--config.dataset.name=npz:/no/such/file.npz", "dataset.name='npz:/no/such/file.npz'"),
        ("--config.optimizer.name=rmsprop", "optimizer.name='rmsprop' is unknown"),
        ("--config.augment.flip_prob=2.0", "flip_prob must lie in [0, 1]"),
        ("--config.method.temperature=-1.0", "temperature"),
    ],
)
def test_bad_config_exits_2_with_clear_message(tmp_path, override, message):
    env_cmd = [
        sys.executable,
        "-m",
        "jaxssl.main",
        f"--config={ROOT}/configs/simclr_digits.py",
        f"--workdir={tmp_path}/w",
        override,
    ]
    proc = subprocess.run(env_cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr
    assert not (tmp_path / "w").exists()  # nothing created before the config was accepted
