"""Fine-tune building blocks without a training run: partitions, LoRA, subsets, metrics."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn import metrics as skm

from jaxssl import models
from jaxssl.data import subset
from jaxssl.evaluate import metrics
from jaxssl.evaluate.confusion_plot import write_confusion_matrix
from jaxssl.finetune import lora, partition


def _ft(**kw) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"mode": "full", "trainable_blocks": 1, **kw})


def _params(name: str, x_shape, **kw):
    enc = models.get_model(name, **kw)
    variables = jax.eval_shape(
        lambda: enc.init(jax.random.PRNGKey(0), jnp.zeros(x_shape), train=False)
    )
    head = {"fc": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)}}
    return {"encoder": variables["params"], "head": head}


def _labels_by_path(params, cfg):
    labels, mults = partition.param_labels(params, cfg)
    return {p: mults[v] for p, v in partition.flat_paths(labels).items()}


def test_partial_on_resnet_trains_last_blocks_and_head_only():
    params = _params("resnet18", (1, 16, 16, 3), width=0.125)
    got = _labels_by_path(params, _ft(mode="partial", trainable_blocks=2))
    trainable = {p.split("/")[1] for p, m in got.items() if m > 0 and p.startswith("encoder/")}
    assert trainable == {"stage4_block0", "stage4_block1"}
    assert got["head/fc/kernel"] == 1.0
    assert got["encoder/stem_conv/kernel"] == 0.0


def test_layer_decay_on_resnet_matches_beit_formula():
    params = _params("resnet18", (1, 16, 16, 3), width=0.125)
    got = _labels_by_path(params, _ft(layer_decay=0.5))
    num_blocks = 8  # 4 stages x 2 blocks; stem depth 0, block i depth i + 1, head L + 1
    assert got["head/fc/kernel"] == 1.0
    assert got["encoder/stage4_block1/conv1/kernel"] == 0.5
    assert got["encoder/stage1_block0/conv1/kernel"] == pytest.approx(0.5**num_blocks)
    assert got["encoder/stem_conv/kernel"] == pytest.approx(0.5 ** (num_blocks + 1))


def test_vit_paths_get_block_depths_and_final_norm_decays_like_head():
    params = _params("vit", (1, 16, 16, 3), patch_size=8, width=16, depth=3, num_heads=2)
    got = _labels_by_path(params, _ft(layer_decay=0.5))
    blocks = sorted({p.split("/")[2] for p in got if "/block" in p})
    assert blocks == ["block0", "block1", "block2"]
    assert got["encoder/transformer/block2/attn/query/kernel"] == 0.5
    assert got["encoder/transformer/block0/attn/query/kernel"] == 0.125
    assert got["encoder/transformer/norm/scale"] == 1.0  # post-block: depth L + 1
    assert got["encoder/patch_embed/kernel"] == 0.0625  # pre-block: depth 0


def test_rules_override_mode_first_match_wins():
    params = _params("cnn_small", (1, 8, 8, 1), widths=(4, 8))
    cfg = _ft(mode="linear", rules=((r"encoder/conv1/", 0.1), (r"head/", "frozen")))
    got = _labels_by_path(params, cfg)
    assert got["encoder/conv1/kernel"] == pytest.approx(0.1)
    assert got["encoder/conv0/kernel"] == 0.0 and got["head/fc/kernel"] == 0.0


def test_lora_shapes_rank_and_targets():
    params = _params("cnn_small", (1, 8, 8, 1), widths=(4, 8))["encoder"]
    tree = lora.init(jax.random.PRNGKey(0), params, [r"conv1/kernel$"], rank=3)
    assert list(tree) == ["conv1"]  # conv0 not targeted
    assert tree["conv1"]["kernel"]["a"].shape == (3 * 3 * 4, 3)
    assert tree["conv1"]["kernel"]["b"].shape == (3, 8)
    with pytest.raises(ValueError, match="match no encoder kernel"):
        lora.init(jax.random.PRNGKey(0), params, [r"nothing"], rank=2)


def test_lora_merge_equals_low_rank_branch_on_dense():
    rng = np.random.default_rng(0)
    w, a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 2)), rng.normal(size=(2, 5))
    x = rng.normal(size=(4, 6))
    merged = lora.merge({"d": {"kernel": w}}, {"d": {"kernel": {"a": a, "b": b}}}, 8.0, 2)
    # Un-merged LoRA (Hu et al. eq. 3): h = x W + (alpha / r) (x A) B.
    np.testing.assert_allclose(x @ merged["d"]["kernel"], x @ w + 4.0 * (x @ a) @ b, rtol=1e-6)


def test_balanced_subset_is_deterministic_balanced_and_nested():
    labels = np.random.default_rng(0).integers(0, 10, size=2000)
    ten = subset.balanced_indices(labels, 0.1, seed=3)
    assert len(ten) == 200 and np.array_equal(ten, subset.balanced_indices(labels, 0.1, seed=3))
    np.testing.assert_array_equal(np.bincount(labels[ten], minlength=10), [20] * 10)
    one = subset.balanced_indices(labels, 0.01, seed=3)
    assert np.bincount(labels[one]).tolist() == [2] * 10 and set(one) <= set(ten)
    assert not np.array_equal(ten, subset.balanced_indices(labels, 0.1, seed=4))
    rare = np.array([0] * 100 + [1] * 3)  # class 1 gives all it has, class 0 the rest
    np.testing.assert_array_equal(np.bincount(rare[subset.balanced_indices(rare, 0.5)]), [49, 3])


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_summary_matches_sklearn(seed, tmp_path):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=250)
    logits = rng.normal(size=(250, 7)) + 2.0 * np.eye(7)[labels] * (rng.random((250, 1)) < 0.5)
    got = metrics.classification_summary(labels, logits, 7)
    preds = logits.argmax(-1)
    p, r, f, _ = skm.precision_recall_fscore_support(
        labels, preds, average="macro", labels=range(7), zero_division=0
    )
    np.testing.assert_allclose(got["top1"], skm.accuracy_score(labels, preds), rtol=1e-6)
    np.testing.assert_allclose(
        got["top5"], skm.top_k_accuracy_score(labels, logits, k=5, labels=range(7)), rtol=1e-6
    )
    np.testing.assert_allclose(
        [got["precision_macro"], got["recall_macro"], got["f1_macro"]], [p, r, f], rtol=1e-5
    )
    cm = skm.confusion_matrix(labels, preds, labels=range(7))
    np.testing.assert_array_equal(got["confusion_matrix"], cm)
    path = write_confusion_matrix(np.asarray(got["confusion_matrix"]), tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regression_report_matches_sklearn():
    rng = np.random.default_rng(0)
    y, pred = rng.normal(size=100), rng.normal(size=100)
    got = metrics.regression_report(y, pred)
    np.testing.assert_allclose(got["mse"], skm.mean_squared_error(y, pred), rtol=1e-5)
    np.testing.assert_allclose(got["mae"], skm.mean_absolute_error(y, pred), rtol=1e-5)
    np.testing.assert_allclose(got["r2"], skm.r2_score(y, pred), rtol=1e-4)


def _model(task: str, smoothing: float = 0.0):
    from jaxssl.finetune.model import FineTuneModel

    c = ml_collections.ConfigDict(
        {
            "model": {"name": "cnn_small", "widths": (4,)},
            "finetune": {"mode": "full", "task": task, "label_smoothing": smoothing},
        }
    )
    return FineTuneModel(c, 5 if task == "classification" else 1)


def test_cross_entropy_with_label_smoothing_matches_formula():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(6, 5)), rng.integers(0, 5, size=6)
    loss, _ = _model("classification", 0.2).objective(jnp.asarray(logits), {"label": labels})
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    target = np.eye(5)[labels] * 0.8 + 0.2 / 5  # Szegedy et al. 2016
    np.testing.assert_allclose(loss, -(target * logp).sum(-1).mean(), rtol=1e-5)


def test_regression_head_is_mse_on_target():
    rng = np.random.default_rng(1)
    out, target = rng.normal(size=(7, 1)), rng.normal(size=7)
    loss, _ = _model("regression").objective(jnp.asarray(out), {"target": target, "label": 0})
    np.testing.assert_allclose(loss, np.mean((out[:, 0] - target) ** 2), rtol=1e-5)


def test_l1_l2_terms_cover_trainable_kernels_only():
    model = _model("classification")
    model.ft.l1, model.ft.l2 = 0.1, 0.2
    params = {"a": {"kernel": jnp.full((2, 2), -2.0), "bias": jnp.ones(2)}, "b": jnp.ones((3, 3))}
    mask = {"a": {"kernel": True, "bias": True}, "b": False}
    np.testing.assert_allclose(model.regulariser(params, mask), 0.1 * 8 + 0.5 * 0.2 * 16)


@pytest.mark.parametrize(
    "name, kw, pattern, expected",
    [
        ("resnet", {"width": 0.125, "stage_sizes": (1, 2)}, r"stage\d+_block\d+", 3),
        (
            "vit",
            {"patch_size": 8, "width": 16, "depth": 3, "num_heads": 2},
            r"transformer/block\d+",
            3,
        ),
    ],
)
def test_adapters_find_the_blocks_of_resnet_and_vit(name, kw, pattern, expected):
    from jaxssl.finetune import adapters

    enc = models.ResNet(**kw) if name == "resnet" else models.get_model(name, **kw)
    x = jax.random.normal(jax.random.PRNGKey(1), (1, 16, 16, 3))
    abstract = jax.eval_shape(lambda: enc.init(jax.random.PRNGKey(0), x, train=False))
    shapes = {}

    def trace(v):  # shapes only: nothing runs
        shapes.update(adapters.output_shapes(lambda: enc.apply(v, x, train=False), [pattern]))
        return 0

    jax.eval_shape(trace, abstract)
    assert len(shapes) == expected
    if name == "resnet":
        return  # traced only: running a ResNet eagerly on CPU costs seconds per call
    variables = enc.init(jax.random.PRNGKey(0), x, train=False)
    params = adapters.init(jax.random.PRNGKey(0), shapes, bottleneck=4)
    # Zero up-projection: attached adapters leave the encoder's output unchanged ...
    with adapters.attach(params):
        before = enc.apply(variables, x, train=False)[0]
    np.testing.assert_array_equal(before, enc.apply(variables, x, train=False)[0])
    # ... and a non-zero one changes it: the adapters really sit in the forward pass.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    noise = [0.1 * jax.random.normal(k, p.shape) for k, p in zip(keys, leaves, strict=True)]
    params = jax.tree.unflatten(treedef, noise)  # random: LayerNorm would cancel a constant
    with adapters.attach(params):
        after = enc.apply(variables, x, train=False)[0]
    assert not np.allclose(after, before)
