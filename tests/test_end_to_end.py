"""A tiny real pre-training run: files written, evaluation in range, resume from checkpoint."""

import json
import struct
from unittest import mock

import numpy as np
import pytest

from jaxssl.train import heap, pretrain
from jaxssl.train.writers import read_metrics

from .helpers import tiny_simclr_config


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
    assert first["steps"] == 4 and first["wall_time_s"] > 0
    # The first run's summary is its final evaluation as logged at step 4 (metrics.jsonl).
    logged = next(r for r in read_metrics(workdir) if r["step"] == 4 and "eval/knn_top1" in r)
    for key in ("knn_top1", "linear_probe_top1"):
        assert first[key] == pytest.approx(logged[f"eval/{key}"], abs=1e-6)
        # Even a random 2-layer CNN's features separate digits (kNN ~0.8, test_learns);
        # features paired with the wrong labels score ~0.1 (10 classes).
        assert first[key] > 0.5, (key, first[key])


def test_second_run_resumes_instead_of_restarting(finished_run):
    workdir, _, second = finished_run
    assert second["steps"] == 6
    steps = [r["step"] for r in read_metrics(workdir) if "loss" in r]
    # The first run logged 2 and 4; the resumed one continued at 6, not from 2 again.
    assert steps == [2, 4, 6]
    # Each run logged its final evaluation at its last step, under eval/.
    assert [r["step"] for r in read_metrics(workdir) if "eval/knn_top1" in r] == [4, 6]
    ckpts = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert ckpts[-1] == 6 and 4 in ckpts


def _tensorboard_scalars(workdir) -> dict[tuple[str, int], float]:
    """(tag, step) -> value of every scalar in the run's event files (TFRecord framing)."""
    from tensorboardX.proto import event_pb2

    out = {}
    for path in workdir.glob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 16 + length
            for value in event.summary.value:
                out[(value.tag, event.step)] = value.simple_value
    return out


def _wandb_history(workdir) -> dict[tuple[str, int], float]:
    """(key, step) -> value of the history rows in an offline W&B run (its .wandb log)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = workdir.glob("wandb/offline-run-*/run-*.wandb")
    data, records, chunk = path.read_bytes(), [], b""
    pos, block = 7, 32768  # after the file header; leveldb-log blocks of 32 KiB
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer: too short for a record header
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            records.append(wandb_internal_pb2.Record.FromString(chunk))
            chunk = b""
        elif kind == 0 and length == 0:
            break
    out = {}
    for record in records:
        if record.HasField("history"):
            items = {i.key or "/".join(i.nested_key): i.value_json for i in record.history.item}
            step = int(json.loads(items.pop("_step")))
            for key, value in items.items():
                if not key.startswith("_"):
                    out[(key, step)] = float(json.loads(value))
    return out


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """4 steps with eval_every=2 through the Python API, W&B offline: evaluations at 2 and 4."""
    pytest.importorskip("wandb")
    import os

    from jaxssl import api

    workdir = tmp_path_factory.mktemp("evaluated")
    config = tiny_simclr_config(str(tmp_path_factory.mktemp("data")))
    config.eval_every = 2
    config.wandb.enabled = True
    saved = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_SILENT")}
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    settled = []  # the step the metrics file had reached at each heap.settle call
    metrics = workdir / "metrics.jsonl"

    def settle():
        rows = read_metrics(workdir) if metrics.exists() else []
        settled.append(max((r["step"] for r in rows), default=0))
        return 0

    try:
        with mock.patch.object(heap, "settle", settle):
            summary = api.run(config, str(workdir))
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return workdir, config, summary, settled


def test_periodic_evaluation_is_logged_plotted_and_ends_at_the_summary(evaluated_run):
    workdir, _, summary, _ = evaluated_run
    evals = [r for r in read_metrics(workdir) if "eval/knn_top1" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for key in ("knn_top1", "linear_probe_top1", "online_probe_test_top1"):
        assert evals[-1][f"eval/{key}"] == pytest.approx(summary[key])
        assert (workdir / "plots" / f"{key}.png").stat().st_size > 0
    for name in ("loss", "online_probe_loss", "online_probe_top1", "learning_rate"):
        assert (workdir / "plots" / f"{name}.png").stat().st_size > 0


def test_the_heap_is_settled_after_the_first_step_and_each_periodic_evaluation(evaluated_run):
    """train/heap.py: after the first step (which compiled the train step) and after the
    evaluation at step 2 (which compiled the evaluation's programs); the job's own final
    evaluation at step 4 ends the run, so nothing is settled after it."""
    workdir, _, _, settled = evaluated_run
    first_log = min(r["step"] for r in read_metrics(workdir) if "loss" in r)
    assert settled[0] < first_log  # the first step finished, its metrics not yet written
    assert settled[1:] == [2]


def test_tensorboard_and_wandb_hold_the_same_scalars(evaluated_run):
    workdir, _, summary, _ = evaluated_run
    tb = _tensorboard_scalars(workdir)
    assert tb[("eval/knn_top1", 4)] == pytest.approx(summary["knn_top1"])
    assert ("eval/knn_top1", 2) in tb and ("loss", 2) in tb
    wb = _wandb_history(workdir)
    assert set(wb) == set(tb)
    for key, value in tb.items():
        assert wb[key] == pytest.approx(value, rel=1e-6), key


def test_api_embeddings_match_the_evaluation_features(evaluated_run):
    from jaxssl import api
    from jaxssl.data import sources

    workdir, config, summary, _ = evaluated_run
    assert (workdir / "jaxssl.done").exists()
    encoder = api.load_encoder(str(workdir))
    test = sources.get_source(config.dataset, "test")
    images = np.stack([test[i]["image"] for i in range(40)])
    features = encoder.embed(images)
    assert features.shape == (40, 16) and features.dtype == np.float32
    # The same numbers the evaluation's feature extraction gives (its own jitted function).
    from jaxssl import methods, sharding
    from jaxssl.evaluate import features as features_lib

    method = methods.get_method(config)
    mesh = sharding.make_mesh()
    fn = features_lib.feature_fn(method.encode, ["pooled"], mesh)
    expected = features_lib.extract(
        fn,
        {"encoder": encoder.params["encoder"]},
        encoder.model_state,
        sources.ArraySource(images, np.zeros(40, np.int32), np.arange(40), "t"),
        batch_size=64,
        mesh=mesh,
    ).host("pooled")[0]
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
