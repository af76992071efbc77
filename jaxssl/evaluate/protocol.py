"""The evaluation protocol after pre-training: kNN and linear probe on frozen features."""

import logging
from typing import Any

import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from jaxssl.data import sources
from jaxssl.evaluate import knn, linear_probe, metrics
from jaxssl.evaluate.features import extract_features
from jaxssl.methods.base import Method


def evaluate_encoder(
    method: Method,
    params: Any,
    model_state: Any,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
) -> dict[str, Any]:
    """kNN top-1 and linear-probe top-1 of the encoder's `eval.feature` on the test split."""
    ev = config.eval
    info = sources.dataset_info(config.dataset)
    split_features = {}
    for split in (config.dataset.train_split, config.dataset.test_split):
        source = sources.get_source(config.dataset, split)
        split_features[split] = extract_features(
            method.encode,
            params,
            model_state,
            source,
            batch_size=ev.batch_size,
            feature=ev.feature,
            mesh=mesh,
        )
    (train_x, train_y), (test_x, test_y) = (split_features[s] for s in split_features)
    logging.info("features: train %s, test %s", train_x.shape, test_x.shape)

    knn_scores = knn.knn_scores(
        train_x,
        train_y,
        test_x,
        k=ev.knn_k,
        temperature=ev.knn_temperature,
        num_classes=info.num_classes,
    )
    probe_logits = linear_probe.linear_probe(
        train_x, train_y, test_x, num_classes=info.num_classes, cfg=ev, seed=config.seed
    )
    labels = jnp.asarray(test_y)
    knn_report = metrics.classification_report(labels, jnp.argmax(knn_scores, -1), info.num_classes)
    probe_report = metrics.classification_report(
        labels, jnp.argmax(probe_logits, -1), info.num_classes
    )
    return {
        "knn_top1": float(knn_report["accuracy"]),
        "linear_probe_top1": float(probe_report["accuracy"]),
        "linear_probe_top5": float(metrics.topk_accuracy(labels, jnp.asarray(probe_logits), 5)),
        "linear_probe_f1_macro": float(probe_report["f1_macro"]),
        "eval_protocol": {
            "feature": ev.feature,
            "knn": f"weighted cosine kNN, k={ev.knn_k}, T={ev.knn_temperature}",
            "linear_probe": (
                f"offline, frozen standardised features, adamw lr={ev.probe_lr}, "
                f"wd={ev.probe_weight_decay}, {ev.probe_steps} steps"
            ),
            "train_examples": int(len(train_y)),
            "test_examples": int(len(test_y)),
            "feature_dim": int(train_x.shape[1]),
        },
    }
