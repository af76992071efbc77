"""The evaluation protocol after (or during) pre-training: kNN, linear and online probes.

A method with its own evaluation (language models: held-out loss) returns it from
Method.evaluate; every other method gets the frozen-encoder protocol below. Features are
extracted once per split by one compiled function and stay sharded over the mesh.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxssl.data import sources
from jaxssl.evaluate import features as features_lib
from jaxssl.evaluate import few_shot, knn, linear_probe, metrics
from jaxssl.methods.base import Method
from jaxssl.methods.online_probe import KEY as ONLINE_PROBE
from jaxssl.methods.online_probe import OnlineProbe


@jax.jit
def _top1_top5(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    return jnp.argmax(logits, -1), jnp.any(top5 == labels[:, None], -1)


def _report(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> dict[str, float]:
    out = metrics.classification_report(jnp.asarray(labels), jnp.asarray(predictions), num_classes)
    return {k: float(v) for k, v in out.items()}


def evaluate_method(
    method: Method, params: Any, model_state: Any, config: ml_collections.ConfigDict, mesh: Mesh
) -> dict[str, Any]:
    """The method's own evaluation if it has one, else evaluate_encoder."""
    own = method.evaluate(params, model_state, mesh)
    if own is not None:
        return own
    return evaluate_encoder(method, params, model_state, config, mesh)


def evaluate_encoder(
    method: Method,
    params: Any,
    model_state: Any,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
) -> dict[str, Any]:
    """kNN, linear-probe and (when trained) online-probe results on the test split."""
    ev = config.eval
    info = sources.dataset_info(config.dataset)
    names = [ev.feature]
    online = ONLINE_PROBE in params
    if online and "pooled" not in names:
        names.append("pooled")
    fn = features_lib.feature_fn(method.encode, names, mesh)  # one compile for both splits
    train, test = (
        features_lib.extract(
            fn,
            params,
            model_state,
            sources.get_source(config.dataset, split),
            batch_size=ev.batch_size,
            mesh=mesh,
        )
        for split in (config.dataset.train_split, config.dataset.test_split)
    )
    labels = features_lib.host(test.labels)
    real = labels >= 0
    y = labels[real]
    n_cls = info.num_classes

    scores = knn.knn_scores(
        train.arrays[ev.feature],
        train.labels,
        test.arrays[ev.feature],
        k=ev.knn_k,
        temperature=ev.knn_temperature,
        num_classes=n_cls,
        mesh=mesh,
    )
    knn_report = _report(y, scores[real].argmax(-1), n_cls)

    probe = linear_probe.fit(
        train.arrays[ev.feature],
        train.labels,
        count=train.count,
        num_classes=n_cls,
        cfg=ev,
        seed=config.seed,
        ids=train.ids,
    )
    pred, in_top5 = (
        features_lib.host(a)[real]
        for a in _top1_top5(linear_probe.logits(probe, test.arrays[ev.feature]), test.labels)
    )
    probe_report = _report(y, pred, n_cls)
    results: dict[str, Any] = {
        "knn_top1": knn_report["accuracy"],
        "linear_probe_top1": probe_report["accuracy"],
        "linear_probe_top5": float(in_top5.mean()),
        "linear_probe_f1_macro": probe_report["f1_macro"],
    }
    fewshot_l2 = {}
    if ev.get("fewshot_shots"):
        fewshot, fewshot_l2 = few_shot.evaluate(
            train.arrays[ev.feature],
            train.labels,
            train.ids,
            test.arrays[ev.feature],
            test.labels,
            num_classes=n_cls,
            ev=ev,
            seed=config.seed,
        )
        results |= fewshot
    if online:
        head = jax.jit(OnlineProbe(config).apply)
        online_pred = features_lib.host(jnp.argmax(head(params, test.arrays["pooled"]), -1))[real]
        results["online_probe_test_top1"] = float(np.mean(online_pred == y))
    results["eval_protocol"] = {
        "feature": ev.feature,
        "knn": f"weighted cosine kNN, k={ev.knn_k}, T={ev.knn_temperature}",
        "linear_probe": (
            f"offline, frozen standardised features, adamw lr={ev.probe_lr}, "
            f"wd={ev.probe_weight_decay}, {ev.probe_steps} steps"
        ),
        "fewshot": (
            f"closed-form ridge on n per class, l2 from {tuple(ev.get('fewshot_l2_grid', ()))} "
            f"picked on held-out train examples, top-1 mean of {ev.get('fewshot_seeds', 0)} draws"
        ),
        "fewshot_l2_picked": fewshot_l2,
        "train_examples": int(train.count),
        "test_examples": int(test.count),
        "feature_dim": int(train.arrays[ev.feature].shape[1]),
    }
    return results
