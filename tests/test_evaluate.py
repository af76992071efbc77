"""kNN, linear probe and classification metrics against scikit-learn and numpy."""

import ml_collections
import numpy as np
import pytest
from sklearn import metrics as skm

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


def test_knn_matches_numpy_reference():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(200, 16)), rng.normal(size=(37, 16))
    train_y = rng.integers(0, 5, size=200)
    got = knn.knn_scores(train, train_y, test, k=7, temperature=0.1, num_classes=5, chunk=16)
    want = numpy_weighted_knn(train, train_y, test, 7, 0.1, 5)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_linear_probe_separates_gaussian_blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 10)) * 4
    y = rng.integers(0, 4, size=400)
    x = centers[y] + rng.normal(size=(400, 10))
    cfg = ml_collections.ConfigDict(
        {"probe_steps": 300, "probe_batch_size": 128, "probe_lr": 0.05, "probe_weight_decay": 0.0}
    )
    logits = linear_probe.linear_probe(x[:300], y[:300], x[300:], num_classes=4, cfg=cfg)
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
