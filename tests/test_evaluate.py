"""kNN, linear probe and classification metrics against scikit-learn and numpy; sharded banks."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxssl import sharding
from jaxssl.evaluate import knn, linear_probe, metrics


def numpy_weighted_knn(train, train_y, test, k, temperature, num_classes):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    scores = np.zeros((len(test), num_classes))
    for i, q in enumerate(test):
        sims = train @ q
        top = np.argsort(-sims)[:k]
        for j in top:
            scores[i, train_y[j]] += np.exp(sims[j] / temperature)
    return scores


@pytest.mark.parametrize("n_devices", [1, 8])
def test_knn_matches_numpy_reference(n_devices):
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(203, 16)), rng.normal(size=(37, 16))  # 203: padded to 208
    train_y = rng.integers(0, 5, size=203)
    mesh = sharding.make_mesh(jax.devices()[:n_devices])
    got = knn.knn_scores(
        train, train_y, jnp.asarray(test), k=7, temperature=0.1, num_classes=5, chunk=16, mesh=mesh
    )
    want = numpy_weighted_knn(train, train_y, test, 7, 0.1, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_knn_bank_is_split_by_rows_and_padding_never_votes():
    """Each of 8 devices holds 1/8 of the bank; the merged per-shard top-k equals one device."""
    rng = np.random.default_rng(1)
    mesh = sharding.make_mesh()
    rows = sharding.batch_sharding(mesh)
    bank = jax.device_put(jnp.asarray(rng.normal(size=(64, 8)), jnp.float32), rows)
    labels = np.concatenate([rng.integers(0, 3, size=56), -np.ones(8, int)])  # 8 padding rows
    labels = jax.device_put(jnp.asarray(labels, jnp.int32), rows)
    assert {s.data.shape for s in bank.addressable_shards} == {(8, 8)}
    queries = jnp.asarray(rng.normal(size=(10, 8)), jnp.float32)
    got = knn.knn_scores(bank, labels, queries, k=5, temperature=0.2, num_classes=3, mesh=mesh)
    one = sharding.make_mesh(jax.devices()[:1])
    single = knn.knn_scores(
        np.asarray(bank)[:56],
        np.asarray(labels)[:56],
        queries,
        k=5,
        temperature=0.2,
        num_classes=3,
        mesh=one,
    )
    np.testing.assert_allclose(got, single, rtol=1e-5)
    want = numpy_weighted_knn(
        np.asarray(bank)[:56], np.asarray(labels)[:56], np.asarray(queries), 5, 0.2, 3
    )
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_linear_probe_separates_gaussian_blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 10)) * 4
    y = rng.integers(0, 4, size=400)
    x = centers[y] + rng.normal(size=(400, 10))
    cfg = ml_collections.ConfigDict(
        {"probe_steps": 300, "probe_batch_size": 128, "probe_lr": 0.05, "probe_weight_decay": 0.0}
    )
    # Row-sharded features with 4 padding rows (label -1) that must never be sampled.
    mesh = sharding.make_mesh()
    train_x = np.concatenate([x[:300], np.full((4, 10), 1e6)])
    train_y = np.concatenate([y[:300], -np.ones(4, int)])
    rows = sharding.batch_sharding(mesh)
    params = linear_probe.fit(
        jax.device_put(jnp.asarray(train_x, jnp.float32), rows),
        jax.device_put(jnp.asarray(train_y, jnp.int32), rows),
        count=300,
        num_classes=4,
        cfg=cfg,
    )
    np.testing.assert_allclose(params["mean"][0], x[:300].mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(params["std"][0], x[:300].std(0) + 1e-6, rtol=1e-4)
    logits = np.asarray(linear_probe.logits(params, jnp.asarray(x[300:], jnp.float32)))
    assert logits.shape == (100, 4)
    assert np.mean(logits.argmax(-1) == y[300:]) > 0.95


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_report_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, size=300)
    preds = np.where(rng.random(300) < 0.5, labels, rng.integers(0, 6, size=300))
    preds[preds == 5] = 4  # class 5 never predicted: its precision is 0 as in sklearn
    report = metrics.classification_report(labels, preds, 6)
    p, r, f, _ = skm.precision_recall_fscore_support(
        labels, preds, average="macro", labels=range(6), zero_division=0
    )
    np.testing.assert_allclose(report["accuracy"], skm.accuracy_score(labels, preds), rtol=1e-6)
    np.testing.assert_allclose(report["precision_macro"], p, rtol=1e-5)
    np.testing.assert_allclose(report["recall_macro"], r, rtol=1e-5)
    np.testing.assert_allclose(report["f1_macro"], f, rtol=1e-5)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(labels, preds, 6),
        skm.confusion_matrix(labels, preds, labels=range(6)),
    )


def test_topk_accuracy_matches_sklearn():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(120, 8))
    labels = rng.integers(0, 8, size=120)
    for k in (1, 3, 5):
        want = skm.top_k_accuracy_score(labels, logits, k=k, labels=range(8))
        np.testing.assert_allclose(metrics.topk_accuracy(labels, logits, k), want, rtol=1e-6)
