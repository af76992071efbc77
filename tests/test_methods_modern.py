"""Issue 11's methods: Barlow Twins, VICReg, DINO with on-device multi-crop, I-JEPA, per-view
batch norm for MoCo v3 / BYOL, and the few-shot ridge probe.

Losses are checked against numpy re-implementations of the papers' pseudo-code (and the
official code where it differs), plus analytic cases; each method runs 2 SGD steps on 1 and
on 8 devices (one compile each; DINO's runs also serve its schedule checks; the others are
slow-marked here, test_methods_vision.py runs them in the fast suite). Augmentation colour /
blur ops are switched off in these tiny configs: they are tested in test_augment.py and only
cost compile time here.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sklearn.linear_model import Ridge

from jaxssl import losses, methods
from jaxssl import sharding as mesh_lib
from jaxssl.augment import views
from jaxssl.config import base_config
from jaxssl.evaluate import few_shot
from jaxssl.methods import base, ijepa
from jaxssl.train import optim
from jaxssl.train import step as step_lib

from .test_methods_vision import digits_batch, tiny_config  # noqa: F401


def _np_standardize(z, eps=1e-5):
    return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_softmax(x):
    return np.exp(_np_log_softmax(x))


def _sharded(x, n_devices):
    """x placed on a mesh of n_devices, rows split over it (the global batch layout)."""
    mesh = mesh_lib.make_mesh(jax.devices()[:n_devices])
    return jax.device_put(jnp.asarray(x), NamedSharding(mesh, P(mesh_lib.batch_axes(mesh))))


# --- losses against the papers' pseudo-code ------------------------------------------


def test_barlow_twins_matches_pseudocode_and_analytic_cases():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(16, 6)), rng.normal(size=(16, 6))
    lambd = 5e-3
    # Algorithm 1 of the paper, with the official code's BatchNorm (biased var, eps 1e-5).
    c = _np_standardize(z1).T @ _np_standardize(z2) / 16
    c_diff = (c - np.eye(6)) ** 2
    c_diff[~np.eye(6, dtype=bool)] *= lambd
    loss, on_diag, off_diag = losses.barlow_twins(jnp.asarray(z1), jnp.asarray(z2), lambd)
    np.testing.assert_allclose(loss, c_diff.sum(), rtol=1e-5)
    np.testing.assert_allclose(on_diag, np.sum((1 - np.diag(c)) ** 2), rtol=1e-5)
    np.testing.assert_allclose(losses.barlow_twins(z1, z2, lambd, scale=1 / 32)[0], loss / 32)
    # Perfectly correlated views (an affine map per dimension): the diagonal term is 0.
    _, on_diag, off_diag = losses.barlow_twins(z1, 3.0 * z1 + 1.0, lambd)
    assert on_diag < 1e-8 and off_diag > 0.01
    # Decorrelated, standardised dimensions (Hadamard columns): C = I, the whole loss is 0.
    h = np.array([[1.0]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])
    z = h[:, 1:]  # 8 x 7, zero-mean orthogonal +-1 columns
    np.testing.assert_allclose(losses.barlow_twins(z, z, lambd)[0], 0.0, atol=1e-8)


def test_vicreg_matches_official_code():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 6)) * 0.5, rng.normal(size=(16, 6)) * 2.0
    n, d = x.shape
    # The official VICReg forward (algorithm 1), in numpy.
    repr_loss = np.mean((x - y) ** 2)
    xc, yc = x - x.mean(0), y - y.mean(0)
    std_x, std_y = np.sqrt(xc.var(0, ddof=1) + 1e-4), np.sqrt(yc.var(0, ddof=1) + 1e-4)
    std_loss = np.mean(np.maximum(1 - std_x, 0)) / 2 + np.mean(np.maximum(1 - std_y, 0)) / 2
    off = ~np.eye(d, dtype=bool)
    cov_x, cov_y = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1)
    cov_loss = (cov_x[off] ** 2).sum() / d + (cov_y[off] ** 2).sum() / d
    loss, parts = losses.vicreg(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(loss, 25 * repr_loss + 25 * std_loss + cov_loss, rtol=1e-5)
    np.testing.assert_allclose(parts["invariance"], repr_loss, rtol=1e-5)
    np.testing.assert_allclose(parts["variance"], std_loss, rtol=1e-5)
    np.testing.assert_allclose(parts["covariance"], cov_loss, rtol=1e-5)
    # Identical, widely spread views: no invariance or variance penalty, only covariance.
    _, parts = losses.vicreg(6 * x, 6 * x)
    assert parts["invariance"] == 0 and parts["variance"] == 0 and parts["covariance"] > 0


def test_dino_loss_matches_official_loop():
    rng = np.random.default_rng(2)
    v, b, k = 5, 3, 7  # 2 global + 3 local views
    student, teacher = rng.normal(size=(v, b, k)), rng.normal(size=(2, b, k))
    center, tau_s, tau_t = rng.normal(size=(k,)) * 0.1, 0.1, 0.05
    # DINOLoss.forward of facebookresearch/dino: chunks per view, skip same-view pairs.
    total, terms = 0.0, 0
    for iq in range(2):
        q = _np_softmax((teacher[iq] - center) / tau_t)
        for j in range(v):
            if j == iq:
                continue
            total += np.mean(np.sum(-q * _np_log_softmax(student[j] / tau_s), -1))
            terms += 1
    got = losses.dino(jnp.asarray(student), jnp.asarray(teacher), center, tau_s, tau_t)
    np.testing.assert_allclose(got, total / terms, rtol=1e-5)
    # Uniform teacher and student: every cross-entropy is log(K).
    flat = losses.dino(jnp.zeros((v, b, k)), jnp.zeros((2, b, k)), jnp.zeros(k), tau_s, tau_t)
    np.testing.assert_allclose(flat, np.log(k), rtol=1e-6)


def test_batch_statistics_span_the_global_batch():
    """Sharded over 8 devices, each loss equals the unsharded value (cross-device sums)."""
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(16, 6)), rng.normal(size=(16, 6))
    bt = jax.jit(lambda a, b: losses.barlow_twins(a, b, 5e-3)[0])
    vic = jax.jit(lambda a, b: losses.vicreg(a, b)[0])
    for fn in (bt, vic):
        one = fn(_sharded(z1, 1), _sharded(z2, 1))
        eight = fn(_sharded(z1, 8), _sharded(z2, 8))
        np.testing.assert_allclose(one, eight, rtol=1e-5)
        # ...and not the mean of per-device values (what a per-shard loss would give).
        per_shard = np.mean([fn(z1[i : i + 2], z2[i : i + 2]) for i in range(0, 16, 2)])
        assert abs(float(one) - per_shard) > 1e-3


# --- multi-crop ------------------------------------------------------------------------


def test_multi_crop_shapes_and_per_view_example_keys(digits_batch):  # noqa: F811
    _, batch = digits_batch
    images = batch["image"][:6]
    # Crop + solarize only: the colour / blur ops cost compile time and are tested elsewhere.
    cfg = views.with_overrides(views.default_config("digits"), dict(jitter_prob=0, blur_prob=0))
    cfg2 = views.with_overrides(cfg, dict(solarize_prob=0.2))
    local = views.with_overrides(cfg, dict(image_size=6, crop_scale=(0.2, 0.4)))

    @jax.jit
    def crop(key, x):
        keys = jax.random.split(key, (5, 6))  # one key per (view, example)
        singles = (views.view(keys[1, 2], x[2], cfg2), views.view(keys[4, 5], x[5], local))
        return views.multi_crop(key, x, [cfg, cfg2], local, 3), singles

    key = jax.random.PRNGKey(0)
    (globals_, locals_), (view_1_2, view_4_5) = crop(key, images)
    assert [g.shape for g in globals_] == [(6, 16, 16, 1)] * 2
    assert [v.shape for v in locals_] == [(6, 6, 6, 1)] * 3
    # Global view 1 of example 2 and local view 2 (view 4) of example 5 are single views
    # made with keys[view, example]: a distinct key per view and example.
    np.testing.assert_allclose(globals_[1][2], view_1_2, atol=1e-5)
    np.testing.assert_allclose(locals_[2][5], view_4_5, atol=1e-5)
    flat = [np.asarray(x).reshape(6, -1) for x in locals_]
    for i in range(3):  # views differ from one another, examples from one another
        assert len({tuple(np.round(r, 4)) for r in flat[i]}) == 6
        for j in range(i):
            assert not np.allclose(flat[i], flat[j])
    (again, _), _ = crop(key, images)
    np.testing.assert_array_equal(again[0], globals_[0])
    (other, _), _ = crop(jax.random.PRNGKey(1), images)
    assert not np.allclose(other[0], globals_[0])


# --- every new method: 1 vs 8 devices -----------------------------------------------------


def modern_config(name: str, data_dir: str) -> ml_collections.ConfigDict:
    """tiny_config without colour / blur ops (compile time), SGD at a constant learning rate
    from step 0 (no warmup: the first step moves the params) and no weight decay (a frozen
    leaf stays bit-identical); DINO with two 4x4 local crops and a 1-step frozen last layer."""
    c = tiny_config(name, data_dir)
    c.batch_size = 16
    c.augment.update(jitter_prob=0.0, blur_prob=0.0)
    c.method.view2 = dict(solarize_prob=0.2)
    # SGD: its update is linear in the gradient (Adam's first step, about lr * sign(g), turns
    # float noise in near-zero gradients into lr-sized differences between device counts).
    c.optimizer.update(name="sgd", learning_rate=0.05, warmup_steps=0, weight_decay=0.0)
    if name == "dino":
        c.method.update(local_crops=2, teacher_temp_warmup_steps=4, freeze_last_layer_steps=1)
        c.method.update(warmup_teacher_temp=0.04, teacher_temp=0.07, clip_grad=0.05)
        c.method.local_view = dict(image_size=4, crop_scale=(0.2, 0.5))
    return c


def _run(config, batch, devices, n_steps: int):
    """(host states after 0, 1, ... n_steps steps on one fixed batch, per-step metrics)."""
    mesh = mesh_lib.make_mesh(devices)
    method = methods.get_method(config)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, batch, mesh)
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, mesh)
    states, history = [jax.device_get(state)], []
    for _ in range(n_steps):
        state, metrics = step(state, mesh_lib.to_global_batch(batch, mesh))
        states.append(jax.device_get(state))
        history.append(jax.device_get(metrics))
    return states, history


@pytest.fixture(scope="module")
def runs(digits_batch):  # noqa: F811
    """Per method, on first use: 2 steps on 1 and on 8 devices from the same init (one compile
    each; the DINO tests below read their states and metrics)."""
    data_dir, batch = digits_batch
    batch = {k: v[:16] for k, v in batch.items()}

    class Lazy(dict):
        def __missing__(self, name):
            config = modern_config(name, data_dir)
            one, hist1 = _run(config, batch, jax.devices()[:1], 2)
            eight, hist8 = _run(config, batch, jax.devices(), 2)
            self[name] = dict(config=config, one=one, eight=eight, hist1=hist1, hist8=hist8)
            return self[name]

    return Lazy()


# test_methods_vision runs 1 vs 8 devices for every registered method with a digits config
# (Barlow Twins and VICReg fast, I-JEPA in the slow pass); DINO runs here, where its runs also
# serve the tests below (the same check again for the others only cost CI time).
@pytest.mark.parametrize("name", ["dino"])
def test_one_device_equals_eight_devices(runs, name):
    r = runs[name]
    for h1, h8 in zip(r["hist1"], r["hist8"], strict=True):
        np.testing.assert_allclose(h1["loss"], h8["loss"], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(r["one"][-1]), jax.tree.leaves(r["eight"][-1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    moved = max(
        np.abs(a - b).max()
        for a, b in zip(
            jax.tree.leaves(r["one"][-1].params["encoder"]),
            jax.tree.leaves(r["one"][0].params["encoder"]),
            strict=True,
        )
    )
    assert moved > 1e-3  # ten times the tolerance: agreement is not that of a no-op
    assert all(np.isfinite(float(h["ssl_loss"])) for h in r["hist8"])


# --- DINO: teacher, center, temperature, frozen last layer, clipping -----------------------


def test_dino_schedules_teacher_frozen_layer_and_clipping(runs):
    r = runs["dino"]
    m = r["config"].method
    method = methods.get_method(r["config"])
    init, first, second = r["eight"]
    temps = [float(h["teacher_temp"]) for h in r["hist8"]]
    np.testing.assert_allclose(temps, [0.04, 0.04 + 0.25 * (0.07 - 0.04)], rtol=1e-6)
    np.testing.assert_allclose(method.teacher_temp(jnp.asarray(2)), 0.055, rtol=1e-6)
    np.testing.assert_allclose(method.teacher_temp(jnp.asarray(9)), 0.07, rtol=1e-6)
    # Step 0 is frozen (freeze_last_layer_steps = 1, no weight decay): the last layer is
    # untouched by it while the rest of the head moves; step 1 moves it.
    head = [s.params["projector"] for s in (init, first, second)]
    np.testing.assert_array_equal(head[0]["last_layer"]["v"], head[1]["last_layer"]["v"])
    assert not np.allclose(head[1]["last_layer"]["v"], head[2]["last_layer"]["v"])
    # Per-parameter clipping at method.clip_grad (0.05 here): SGD's first (nesterov) update
    # is -lr * 1.9 * g, so no student leaf moved more than lr * 1.9 * clip, and the leaves
    # whose raw gradient norm exceeds the clip moved exactly that much.
    lr = r["config"].optimizer.learning_rate
    student = ("encoder", "projector")
    deltas = [
        np.linalg.norm(np.asarray(b) - np.asarray(a))
        for a, b in zip(
            jax.tree.leaves({k: init.params[k] for k in student}),
            jax.tree.leaves({k: first.params[k] for k in student}),
            strict=True,
        )
    ]
    bound = lr * 1.9 * m.clip_grad
    assert max(deltas) <= bound * (1 + 1e-4)
    assert any(np.isclose(d, bound, rtol=1e-3) for d in deltas)
    # The teacher is not optimised: it moves towards the student by the EMA only.
    assert "target" not in first.params
    momentum = float(r["hist8"][0]["momentum"])
    for key in student:
        t0, t1, s1 = (
            jax.tree.leaves(x[key])
            for x in (
                init.model_state["target"]["params"],
                first.model_state["target"]["params"],
                first.params,
            )
        )
        for a, b, c in zip(t0, t1, s1, strict=True):
            np.testing.assert_allclose(b, momentum * a + (1 - momentum) * c, rtol=1e-5, atol=1e-6)


def test_dino_center_is_an_ema_of_the_teacher_batch_mean(runs, digits_batch):  # noqa: F811
    r = runs["dino"]
    method = methods.get_method(r["config"])
    m = r["config"].method
    params, state = r["one"][0].params, dict(r["one"][0].model_state)
    state["center"] = jnp.asarray(np.random.default_rng(4).normal(size=(8,)), jnp.float32)
    batch = {k: jnp.asarray(v[:16]) for k, v in digits_batch[1].items()}

    @jax.jit
    def probe(rng):
        _, (_, new_state) = method.loss(params, state, batch, rng, jnp.asarray(1))
        globals_, _ = views.multi_crop(
            rng, batch["image"], method.global_cfgs, method.local_cfg, m.local_crops
        )
        teacher, _ = method.target_forward(state, method.view_groups(globals_))
        return new_state["center"], teacher

    center, teacher = probe(jax.random.PRNGKey(3))
    assert teacher.shape == (2 * 16, 8)  # the teacher sees the 2 global crops only
    expected = 0.9 * state["center"] + 0.1 * np.asarray(teacher).mean(0)
    np.testing.assert_allclose(center, expected, rtol=1e-5, atol=1e-6)
    assert r["one"][0].model_state["center"].shape == (8,)
    assert np.abs(r["one"][1].model_state["center"]).max() > 0  # training moved it from 0


def test_dino_head_weight_norm_and_config_errors(runs):
    r = runs["dino"]
    method = methods.get_method(r["config"])
    head = r["one"][0].params["projector"]
    assert set(head["last_layer"]) == {"v"}  # norm_last_layer: the norm g is fixed to 1
    stats = r["one"][0].model_state["batch_stats"]["projector"]  # the head's BN (head_bn)

    def apply(h, x):
        return method.online.projector.apply({"params": h, "batch_stats": stats}, x, train=False)

    x = jax.random.normal(jax.random.PRNGKey(0), (4, 16))
    out = apply(head, x)
    scaled = dict(head, last_layer={"v": 5.0 * head["last_layer"]["v"]})
    # Only v's direction matters; and the outputs are cosines (|out| <= 1).
    np.testing.assert_allclose(out, apply(scaled, x), rtol=1e-5)
    assert np.abs(out).max() <= 1 + 1e-6
    bad = r["config"].copy_and_resolve_references()
    bad.model = ml_collections.ConfigDict(
        dict(name="vit", patch_size=4, width=16, depth=1, num_heads=2, pos_embedding="sincos")
    )
    bad.method.local_view = dict(image_size=6)
    with pytest.raises(ValueError, match="multiples of patch_size"):
        methods.get_method(bad)
    bad.method.local_view = dict(image_size=4)
    bad.model.pos_embedding = "learned"
    with pytest.raises(ValueError, match="learned ViT positions"):
        methods.get_method(bad)
    bad = r["config"].copy_and_resolve_references()
    bad.method.center_momentum = 1.0
    with pytest.raises(ValueError, match="center_momentum"):
        methods.get_method(bad)


# --- per-view batch norm (MoCo v3, BYOL, Barlow Twins, DINO) ---------------------------


@pytest.mark.parametrize(
    "name, per_view, expected",
    [
        ("moco", True, [16, 16]),
        ("moco", False, [32]),
        ("byol", True, [16, 16]),
        ("byol", False, [32]),
        ("barlow_twins", True, [16, 16]),
        ("vicreg", False, [32]),
        ("dino", False, [32, 32]),  # student: 2 global 8x8, 2 local 4x4; teacher: globals
        ("dino", True, [16, 16, 16, 16]),
    ],
)
def test_each_loss_forwards_the_batch_norm_batches_its_option_asks_for(
    digits_batch,  # noqa: F811
    monkeypatch,
    name,
    per_view,
    expected,
):
    """The loss's forward passes, recorded from an abstract trace (nothing compiles): one
    batch-norm batch per view with bn_per_view, one of all same-size views without."""
    data_dir, batch = digits_batch
    config = modern_config(name, data_dir)
    config.method.bn_per_view = per_view
    method = methods.get_method(config)
    batch = {k: v[:16] for k, v in batch.items()}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    seen = []
    real = base.forward_groups

    def record(module, p, stats, groups):
        seen.append([g.shape[0] for g in groups])
        return real(module, p, stats, groups)

    monkeypatch.setattr(base, "forward_groups", record)
    jax.eval_shape(method.loss, params, state, batch, jax.random.PRNGKey(1), jnp.asarray(0))
    assert seen[0] == expected
    if len(seen) > 1:  # the EMA target / teacher: the same batches, globals only for DINO
        assert seen[1] == (expected[: len(expected) // 2] if name == "dino" else expected)


def test_bn_per_view_normalises_each_view_alone(digits_batch):  # noqa: F811
    """View 2 = 3 x view 1. The first conv has no bias, so its output is scaled by 3, which
    a BN over that view alone removes: both views give the same outputs (online and
    target). One BN over both views together does not."""
    data_dir, batch = digits_batch
    x = 10.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 8, 8, 1))  # eps-free variances
    config = tiny_config("moco", data_dir)
    config.method.bn_per_view = True
    method = methods.get_method(config)

    @jax.jit
    def forward(x):
        params, state = method.init(jax.random.PRNGKey(1), batch)
        outs = {}
        for per_view, groups in ((True, [x, 3.0 * x]), (False, [jnp.concatenate([x, 3.0 * x])])):
            online, pooled, _ = method.online_forward(params, state, groups)
            outs[per_view] = (online, pooled, method.target_forward(state, groups)[0])
        return outs

    outs = forward(x)
    for out in outs[True]:
        np.testing.assert_allclose(out[:8], out[8:], rtol=1e-3, atol=1e-4)
    assert not np.allclose(outs[False][0][:8], outs[False][0][8:], rtol=1e-2, atol=1e-2)
    bad = tiny_config("moco", data_dir)
    del bad.method["bn_per_view"]  # declared a bool in the config file: built in Python here
    bad.method.bn_per_view = "yes"
    with pytest.raises(ValueError, match="bn_per_view"):
        methods.get_method(bad)


# --- I-JEPA ---------------------------------------------------------------------------------


def test_ijepa_loss_matches_official_code():
    rng = np.random.default_rng(8)
    pred, h = rng.normal(size=(2, 4, 3, 6)) * 2, rng.normal(size=(2, 4, 3, 6)) * 3 + 1
    # The official train step: h = F.layer_norm(h, (D,)); loss = F.smooth_l1_loss(z, h).
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    d = np.abs(pred - h)
    smooth_l1 = np.mean(np.where(d < 1, 0.5 * d**2, d - 0.5))
    got = losses.ijepa(jnp.asarray(pred), jnp.asarray(h * 7 - 2))  # target scale is removed
    np.testing.assert_allclose(got, smooth_l1, rtol=1e-4)
    mse = losses.ijepa(jnp.asarray(pred), jnp.asarray(h), "mse")
    np.testing.assert_allclose(mse, np.mean((pred - h) ** 2), rtol=1e-4)
    assert losses.ijepa(jnp.asarray(h), jnp.asarray(h)) < 1e-8


def test_ijepa_masks_are_blocks_with_a_disjoint_context():
    grid, target, context, keep = (8, 8), (2, 3), (7, 7), 20
    ctx, tgt = jax.jit(lambda k: ijepa.sample_masks(k, 16, grid, 4, target, context, keep))(
        jax.random.PRNGKey(0)
    )
    ctx, tgt = np.asarray(ctx), np.asarray(tgt)
    assert ctx.shape == (16, keep) and tgt.shape == (16, 4, 6)
    shapes = set()
    for b in range(16):
        for block in tgt[b]:
            rows, cols = block // 8, block % 8
            h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
            assert len(set(block)) == 6 and h * w == 6  # a full h x w rectangle
            shapes.add((int(h), int(w)))
        # Context patches: never a target patch, all inside one 7x7 block.
        assert not set(ctx[b]) & set(tgt[b].reshape(-1))
        rows, cols = ctx[b] // 8, ctx[b] % 8
        assert rows.max() - rows.min() < 7 and cols.max() - cols.min() < 7
    assert shapes == {(2, 3), (3, 2)}  # each target block is transposed at random
    assert len({tuple(sorted(t.reshape(-1))) for t in tgt}) == 16  # per-example masks
    # Fewer free patches than `keep`: the free ones repeat, no target patch leaks in.
    ctx, tgt = ijepa.sample_masks(jax.random.PRNGKey(1), 4, (4, 4), 3, (2, 2), (4, 4), 10)
    for b in range(4):
        assert not set(np.asarray(ctx[b])) & set(np.asarray(tgt[b]).reshape(-1))


def test_ijepa_encoders_predictor_and_ema(digits_batch, monkeypatch):  # noqa: F811
    """Traced abstractly (nothing compiles): the context encoder sees only the kept context
    patches, the target encoder every patch, the predictor the context plus one query per
    target patch, for each target block on its own."""
    data_dir, batch = digits_batch
    config = modern_config("ijepa", data_dir)
    method = methods.get_method(config)
    batch = {k: v[:16] for k, v in batch.items()}
    params, state = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
    assert "target" not in params and set(state["target"]) == {"encoder"}
    seen = []

    def record(next_fun, args, kwargs, context):
        if type(context.module).__name__ == "Transformer" and context.method_name == "__call__":
            seen.append(args[0].shape)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        jax.eval_shape(method.loss, params, state, batch, jax.random.PRNGKey(1), jnp.asarray(0))
    grid_len, keep = method.grid[0] * method.grid[1], method.keep
    targets, block = config.method.num_targets, math.prod(method.target_block)
    assert [s[:2] for s in seen] == [(16, keep), (16, grid_len), (16 * targets, keep + block)]
    # The target encoder is an EMA of the context encoder, rising linearly to 1.
    p, s = jax.jit(method.init)(jax.random.PRNGKey(0), batch)
    p = jax.tree.map(lambda x: x + 0.1, p)
    m = float(method.momentum(jnp.asarray(5)))
    np.testing.assert_allclose(m, 0.99 + 0.01 * 5 / config.total_steps, rtol=1e-6)
    new = jax.jit(method.after_update)(p, s, jnp.asarray(5))["target"]["encoder"]
    leaves = [jax.tree.leaves(x) for x in (new, s["target"]["encoder"], p["encoder"])]
    for a, t, o in zip(*leaves, strict=True):
        np.testing.assert_allclose(a, m * t + (1 - m) * o, rtol=1e-6, atol=1e-7)


# --- few-shot ridge probe -----------------------------------------------------------------


def _np_ridge(x, y, num_classes, l2):
    """big_vision fewshot_lsr in numpy: standardise, bias column 100, {-1,1} targets, solve."""
    mean, std = x.mean(0), x.std(0) + 1e-5
    z = np.concatenate([(x - mean) / std, np.full((len(x), 1), 100.0)], 1)
    t = 2 * np.eye(num_classes)[y] - 1
    w = np.linalg.solve(z.T @ z + l2 * np.eye(z.shape[1]), z.T @ t)
    return lambda q: np.concatenate([(q - mean) / std, np.full((len(q), 1), 100.0)], 1) @ w, z, t


@pytest.mark.parametrize("rows", [6, 40])  # fewer rows than dims (dual form), then more
def test_ridge_heads_match_numpy_and_sklearn(rows):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(rows, 12)) + 2.0, np.arange(rows) % 3
    q = rng.normal(size=(9, 12)) + 2.0
    for l2, (w, b) in zip((0.5, 64.0), few_shot.ridge_heads(x, y, 3, (0.5, 64.0)), strict=True):
        scores, z, t = _np_ridge(x, y, 3, l2)
        np.testing.assert_allclose(q @ w + b, scores(q), rtol=1e-6, atol=1e-8)
        # scikit-learn's Ridge on the same design (standardised + bias column, no intercept).
        sk = Ridge(alpha=l2, fit_intercept=False, solver="cholesky").fit(z, t)
        zq = np.concatenate([(q - x.mean(0)) / (x.std(0) + 1e-5), np.full((9, 1), 100.0)], 1)
        np.testing.assert_allclose(q @ w + b, sk.predict(zq), rtol=1e-5, atol=1e-6)


def test_few_shot_draw_is_per_class_and_layout_free():
    labels = np.array([0, 1, 2] * 6 + [-1, -1])
    ids = np.concatenate([np.arange(18), [-1, -1]])
    shots, held = few_shot.draw(labels, ids, 3, 2, 3, seed=0)
    assert np.bincount(labels[shots], minlength=3).tolist() == [2, 2, 2]
    assert np.bincount(labels[held], minlength=3).tolist() == [3, 3, 3]
    assert not set(shots) & set(held) and np.all(labels[np.concatenate([shots, held])] >= 0)
    perm = np.random.default_rng(0).permutation(20)  # the same examples in another row order
    shots_p, _ = few_shot.draw(labels[perm], ids[perm], 3, 2, 3, seed=0)
    assert sorted(ids[perm][shots_p]) == sorted(ids[shots])
    assert sorted(ids[few_shot.draw(labels, ids, 3, 2, 3, seed=1)[0]]) != sorted(ids[shots])


def test_few_shot_evaluate_on_sharded_features_matches_numpy():
    rng = np.random.default_rng(6)
    num_classes, dim = 4, 10
    means = rng.normal(size=(num_classes, dim)) * 1.5

    def split(n, pad):
        y = rng.integers(0, num_classes, n)
        x = means[y] + rng.normal(size=(n, dim))
        return (
            np.concatenate([x, np.zeros((pad, dim))]).astype(np.float32),
            np.concatenate([y, -np.ones(pad, int)]).astype(np.int32),
        )

    train_x, train_y = split(94, 2)
    test_x, test_y = split(30, 2)
    train_ids = np.where(train_y >= 0, np.arange(96), -1).astype(np.int32)
    ev = base_config().eval
    ev.update(fewshot_shots=(1, 5, 40), fewshot_seeds=2, fewshot_l2_grid=(0.01, 100.0))
    got, picks = few_shot.evaluate(
        *(_sharded(a, 8) for a in (train_x, train_y, train_ids, test_x, test_y)),
        num_classes=num_classes,
        ev=ev,
        seed=7,
    )
    assert set(got) == {"fewshot_1shot_top1", "fewshot_5shot_top1"}  # 40 > smallest class
    real = test_y >= 0
    for n in (1, 5):
        accs = []
        for s, l2 in zip(range(2), picks[str(n)], strict=True):
            shots, held = few_shot.draw(train_y, train_ids, num_classes, n, 10, 7 + s)
            scores, _, _ = _np_ridge(train_x[shots].astype(np.float64), train_y[shots], 4, l2)
            val = {
                g: np.mean(
                    _np_ridge(train_x[shots].astype(np.float64), train_y[shots], 4, g)[0](
                        train_x[held]
                    ).argmax(1)
                    == train_y[held]
                )
                for g in (0.01, 100.0)
            }
            assert val[l2] == max(val.values())  # the pick is the best on held-out train
            accs.append(np.mean(scores(test_x[real]).argmax(1) == test_y[real]))
        np.testing.assert_allclose(got[f"fewshot_{n}shot_top1"], np.mean(accs), atol=1e-6)
    assert got["fewshot_5shot_top1"] > 0.7  # separable classes: the probe works at all


def test_few_shot_config_errors():
    ev = base_config().eval
    few_shot.check_config(ev)
    for key, value in (
        ("fewshot_shots", (0, 5)),
        ("fewshot_l2_grid", (-1.0,)),
        ("fewshot_seeds", 0),
    ):
        bad = ev.copy_and_resolve_references()
        bad[key] = value
        with pytest.raises(ValueError, match=key):
            few_shot.check_config(bad)
