"""Classification metrics computed in JAX from labels and predictions or logits.

The reports are jitted: op by op, a report compiled some 30 one-op programs (0.8 s of a
digits run's evaluation on a 2-core CPU); one program compiles in 0.1 s.
"""

import functools

import jax
import jax.numpy as jnp


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int) -> jax.Array:
    """[true, predicted] counts, as scikit-learn lays them out."""
    index = labels * num_classes + predictions
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[index].add(1)
    return counts.reshape(num_classes, num_classes)


def topk_accuracy(labels: jax.Array, logits: jax.Array, k: int) -> jax.Array:
    """Fraction of rows whose label is among the k largest logits."""
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits, k)
    return jnp.mean(jnp.any(top == labels[:, None], axis=-1))


@functools.partial(jax.jit, static_argnames="num_classes")
def classification_report(
    labels: jax.Array, predictions: jax.Array, num_classes: int
) -> dict[str, jax.Array]:
    """Accuracy and macro precision/recall/F1 (classes absent from both count as 0)."""
    cm = confusion_matrix(labels, predictions, num_classes).astype(jnp.float32)
    tp = jnp.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    precision = jnp.where(predicted > 0, tp / jnp.maximum(predicted, 1), 0.0)
    recall = jnp.where(actual > 0, tp / jnp.maximum(actual, 1), 0.0)
    denom = precision + recall
    f1 = jnp.where(denom > 0, 2 * precision * recall / jnp.where(denom > 0, denom, 1), 0.0)
    return {
        "accuracy": tp.sum() / cm.sum(),
        "precision_macro": precision.mean(),
        "recall_macro": recall.mean(),
        "f1_macro": f1.mean(),
    }


@jax.jit
def regression_report(targets: jax.Array, predictions: jax.Array) -> dict[str, jax.Array]:
    """MSE, MAE and the coefficient of determination R^2 (as sklearn's r2_score)."""
    targets = jnp.asarray(targets, jnp.float32)
    err = jnp.asarray(predictions, jnp.float32) - targets
    total = jnp.sum(jnp.square(targets - targets.mean()))
    return {
        "mse": jnp.mean(jnp.square(err)),
        "mae": jnp.mean(jnp.abs(err)),
        "r2": 1.0 - jnp.sum(jnp.square(err)) / jnp.where(total > 0, total, 1.0),
    }


@functools.partial(jax.jit, static_argnames="num_classes")
def classification_summary(
    labels: jax.Array, logits: jax.Array, num_classes: int
) -> dict[str, jax.Array]:
    """top1, top5, macro precision / recall / F1 and the confusion matrix from logits."""
    labels, logits = jnp.asarray(labels), jnp.asarray(logits)
    predictions = jnp.argmax(logits, -1)
    report = classification_report(labels, predictions, num_classes)
    return {
        "top1": report["accuracy"],
        "top5": topk_accuracy(labels, logits, 5),
        "precision_macro": report["precision_macro"],
        "recall_macro": report["recall_macro"],
        "f1_macro": report["f1_macro"],
        "confusion_matrix": confusion_matrix(labels, predictions, num_classes),
    }
