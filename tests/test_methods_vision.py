"""Vision methods: losses vs numpy, EMA, masking, and for EVERY registered method with a
configs/NAME_digits.py: 1 vs 8 devices and the online probe (no list to edit)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxssl import losses, methods
from jaxssl import sharding as mesh_lib
from jaxssl.data import sources
from jaxssl.methods import ema, mae
from jaxssl.models.vit import patchify, unpatchify
from jaxssl.train import optim
from jaxssl.train import step as step_lib

from .helpers import ROOT, load_config

# Every registered method that ships a digits config (SimCLR's own tests: test_train_step.py).
METHOD_NAMES = tuple(
    sorted(
        n
        for n in methods.METHODS
        if n != "simclr" and (ROOT / "configs" / f"{n}_digits.py").exists()
    )
)


def _shrink(block, key: str, value):
    """A method key made tiny by its name's convention (widths, depths, heads, sizes)."""
    if key.endswith(("_dims", "_widths")) and isinstance(value, tuple):
        return tuple(min(int(v), 16) for v in value)
    if key.endswith(("_dim", "_width")) and isinstance(value, int):
        return min(value, 8)
    if key.endswith("_depth") and isinstance(value, int):
        return 1
    if key.endswith("_heads") and isinstance(value, int):
        return min(value, 2)
    if key == "queue_size":
        return 64  # a method with a queue option gets its ring buffer exercised
    return value


def tiny_config(name: str, data_dir: str):
    """configs/<name>_digits.py shrunk to compile in seconds, for any method."""
    c = load_config(f"{name}_digits")
    c.dataset.data_dir = data_dir
    c.batch_size = 32
    c.total_steps = 20
    c.optimizer.warmup_steps = 1
    c.augment.image_size = 8
    if c.model.name.startswith("vit"):
        c.model.update(width=16, depth=1, num_heads=2, patch_size=2)
    elif "widths" in c.model:
        c.model.widths = (8, 16)
    for key, value in c.method.items():
        c.method[key] = _shrink(c.method, key, value)
    return c


@pytest.fixture(scope="module")
def digits_batch(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("data"))
    c = tiny_config("moco", data_dir)
    source = sources.get_source(c.dataset, "train")
    images = np.stack([source[i]["image"] for i in range(32)])
    labels = np.array([source[i]["label"] for i in range(32)], np.int32)
    return data_dir, {"image": images, "label": labels}


def _train(config, batch, devices, n_steps, keep_at=2):
    """Runs n_steps on one fixed batch; returns (state after keep_at steps, per-step metrics)."""
    mesh = mesh_lib.make_mesh(devices)
    method = methods.get_method(config)
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, batch, mesh)
    init = jax.device_get(state)
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, mesh)
    kept, history = None, []
    for i in range(n_steps):
        state, metrics = step(state, mesh_lib.to_global_batch(batch, mesh))
        history.append(jax.device_get(metrics))
        if i + 1 == keep_at:
            kept = jax.device_get(state)
    return init, kept, history


# Slow-marked here, covered fast elsewhere: byol shares momentum.py with moco, autoencoder
# vae's path, dino runs 1 vs 8 in test_methods_modern; ijepa's compile is the slowest (CI's
# slow pass runs all of them).
SLOW = ("byol", "autoencoder", "dino", "ijepa")
_RUNS: dict = {}


@pytest.fixture(scope="module")
def runs(digits_batch):
    """Per method, on first use: 2 steps on 1 device, 2 steps (VAE: 12) on 8 devices."""
    data_dir, batch = digits_batch

    class Lazy(dict):
        def __missing__(self, name):
            config = tiny_config(name, data_dir)
            # SGD: its update is linear in the gradient. Adam's first step is about
            # lr * sign(g), which turns float reassociation noise in near-zero gradients
            # into lr-sized differences between device counts.
            config.optimizer.update(name="sgd", learning_rate=0.05)
            init, one, hist1 = _train(config, batch, jax.devices()[:1], 2)
            _, eight, hist8 = _train(config, batch, jax.devices(), 12 if name == "vae" else 2)
            self[name] = dict(
                config=config, init=init, one=one, eight=eight, hist1=hist1, hist8=hist8
            )
            return self[name]

    return Lazy()


@pytest.fixture(scope="module")
def inits(digits_batch):
    """(method, params, model_state) straight from init, per method, without training."""
    data_dir, batch = digits_batch

    class Lazy(dict):
        def __missing__(self, name):
            method = methods.get_method(tiny_config(name, data_dir))
            # One compiled init: eager init dispatches (and compiles) op by op, 3x slower.
            self[name] = (method, *jax.jit(method.init)(jax.random.PRNGKey(0), batch))
            return self[name]

    return Lazy()


# --- losses against numpy -----------------------------------------------------------


def _np_normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("with_queue", [False, True])
def test_info_nce_matches_numpy(with_queue):
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    queue = _np_normalize(rng.normal(size=(7, 5))) if with_queue else None
    tau = 0.3
    keys = _np_normalize(k) if queue is None else np.concatenate([_np_normalize(k), queue])
    logits = _np_normalize(q) @ keys.T / tau
    expected = -np.mean(np.diag(_np_log_softmax(logits)[:, :6])) * 2 * tau
    loss, acc = losses.info_nce(
        jnp.asarray(q), jnp.asarray(k), tau, None if queue is None else jnp.asarray(queue)
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(acc, np.mean(logits.argmax(-1) == np.arange(6)))


def test_normalized_mse_is_two_minus_two_cosine():
    rng = np.random.default_rng(1)
    p, z = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    cos = np.sum(p * z, -1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(z, axis=-1)
    np.testing.assert_allclose(losses.normalized_mse(p, z), np.mean(2 - 2 * cos), rtol=1e-5)
    np.testing.assert_allclose(losses.normalized_mse(p, 3.0 * p), 0.0, atol=1e-6)


def test_masked_mse_counts_hidden_patches_only():
    rng = np.random.default_rng(2)
    pred, target = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 6, 4))
    mask = (rng.uniform(size=(3, 6)) < 0.5).astype(np.float32)
    per_patch = ((pred - target) ** 2).mean(-1)
    expected = (per_patch * mask).sum() / mask.sum()
    np.testing.assert_allclose(losses.masked_mse(pred, target, mask), expected, rtol=1e-5)
    grad = jax.grad(losses.masked_mse)(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    assert np.all(np.asarray(grad)[mask == 0] == 0)  # visible patches do not matter
    assert np.all(np.abs(np.asarray(grad)[mask == 1]).sum(-1) > 0)


def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(3)
    mean, log_var = np.array([[0.5, -1.0, 0.0]]), np.array([[0.3, -0.7, 0.0]])
    sigma = np.exp(0.5 * log_var)
    z = mean + sigma * rng.normal(size=(400_000, 3))
    mc = np.mean(np.sum(stats.norm.logpdf(z, mean, sigma) - stats.norm.logpdf(z), -1))
    np.testing.assert_allclose(losses.gaussian_kl(mean, log_var)[0], mc, rtol=2e-2)
    np.testing.assert_allclose(losses.gaussian_kl(np.zeros((1, 3)), np.zeros((1, 3))), [0.0])


def test_reconstruction_error_matches_numpy():
    rng = np.random.default_rng(4)
    logits, target = rng.normal(size=(2, 3, 3, 1)), rng.uniform(size=(2, 3, 3, 1))
    p = 1 / (1 + np.exp(-logits))
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(losses.reconstruction_error(logits, target, "bce"), bce, rtol=1e-5)
    mse = ((logits - target) ** 2).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(losses.reconstruction_error(logits, target, "mse"), mse, rtol=1e-5)


# --- EMA --------------------------------------------------------------------------


def test_ema_update_and_cosine_momentum():
    target, online = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, -2.0])}
    out = ema.ema_update(target, online, 0.9)
    np.testing.assert_allclose(out["w"], 0.9 * np.array([1, 2]) + 0.1 * np.array([3, -2]))
    np.testing.assert_allclose(ema.cosine_momentum(0.99, 0, 100), 0.99)
    np.testing.assert_allclose(ema.cosine_momentum(0.99, 50, 100), 0.995, rtol=1e-6)
    np.testing.assert_allclose(ema.cosine_momentum(0.99, 100, 100), 1.0)


@pytest.mark.parametrize("name", ["moco", "byol"])
def test_target_is_ema_of_online_and_gets_no_gradient(inits, digits_batch, name):
    method, params, model_state = inits[name]
    assert "target" not in params  # the target is not optimised at all
    # Move the online weights so that online != target, then check the EMA formula.
    params = jax.tree.map(lambda x: x + 0.1, params)
    m = method.momentum(jnp.asarray(5))
    updated = method.after_update(params, model_state, jnp.asarray(5))
    for key in ("encoder", "projector"):
        expected = jax.tree.map(
            lambda t, o: m * t + (1 - m) * o, model_state["target"]["params"][key], params[key]
        )
        for a, b in zip(
            jax.tree.leaves(updated["target"]["params"][key]),
            jax.tree.leaves(expected),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    _, batch = digits_batch

    def loss_of_target(target_params):
        state = {**model_state, "target": {**model_state["target"], "params": target_params}}
        return method.loss(params, state, batch, jax.random.PRNGKey(0), jnp.asarray(1))[0]

    grads = jax.jit(jax.grad(loss_of_target))(model_state["target"]["params"])
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))


def test_moco_queue_ring_buffer(runs):
    r = runs["moco"]
    state0, state2 = r["init"].model_state, r["one"].model_state
    assert int(state2["queue_ptr"]) == 2 * 32 % 64
    q0, q2 = np.asarray(state0["queue"]), np.asarray(state2["queue"])
    assert not np.allclose(q0, q2)  # both halves of the 64-slot queue were overwritten
    np.testing.assert_allclose(np.linalg.norm(q2, axis=-1), 1.0, rtol=1e-5)


# --- MAE ---------------------------------------------------------------------------


def test_random_masking_counts_and_randomness():
    keep_idx, mask = mae.random_masking(jax.random.PRNGKey(0), 16, 64, 0.75)
    keep_idx, mask = np.asarray(keep_idx), np.asarray(mask)
    assert keep_idx.shape == (16, 16)
    np.testing.assert_array_equal(mask.sum(1), 48)  # exactly 75% hidden in every example
    for i in range(16):
        assert len(set(keep_idx[i])) == 16 and np.all(mask[i, keep_idx[i]] == 0)
    assert len({tuple(sorted(k)) for k in keep_idx}) == 16  # different per example
    _, mask2 = mae.random_masking(jax.random.PRNGKey(1), 16, 64, 0.75)
    assert not np.array_equal(mask, np.asarray(mask2))  # different per step (key)


def test_patchify_round_trip_and_layout():
    x = np.random.default_rng(5).normal(size=(2, 8, 12, 3)).astype(np.float32)
    p = np.asarray(patchify(jnp.asarray(x), 4))
    assert p.shape == (2, 6, 48)
    np.testing.assert_array_equal(p[1, 3], x[1, 4:8, 0:4].reshape(-1))  # row 1, column 0
    np.testing.assert_array_equal(unpatchify(jnp.asarray(p), 4, 8, 12), x)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_mae_encoder_sees_only_visible_patches(runs, digits_batch, pool):
    config = runs["mae"]["config"].copy_and_resolve_references()
    config.model.pool = pool
    method = methods.get_method(config)
    _, batch = digits_batch
    seen = []

    def record(next_fun, args, kwargs, context):
        if type(context.module).__name__ == "Transformer" and context.method_name == "__call__":
            seen.append(args[0].shape)
        return next_fun(*args, **kwargs)

    params, _ = method.init(jax.random.PRNGKey(0), batch)
    x = jnp.zeros((32, 8, 8, 1))
    with nn.intercept_methods(record):
        pred, mask, _ = method.reconstruct(params, x, jax.random.PRNGKey(1))
    visible = 16 - int(np.asarray(mask)[0].sum())  # 8x8 with patch 2: 16 patches
    assert visible == 4
    assert seen[0][1] == visible + (pool == "cls")  # encoder sequence length
    assert seen[1][1] == 16  # the decoder sees every position
    assert pred.shape == (32, 16, 4)


# --- every method: 1 vs 8 devices, online probe, learning ---------------------------


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in METHOD_NAMES]
)
def test_one_device_equals_eight_devices(runs, name):
    r = runs[name]
    np.testing.assert_allclose(r["hist1"][1]["loss"], r["hist8"][1]["loss"], rtol=1e-4)
    for a, b in zip(jax.tree.leaves(r["one"]), jax.tree.leaves(r["eight"]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    moved = max(
        np.abs(a - b).max()
        for a, b in zip(
            jax.tree.leaves(r["one"].params["encoder"]),
            jax.tree.leaves(r["init"].params["encoder"]),
            strict=True,
        )
    )
    # The params moved ten times the tolerance above, so agreement is not a no-op's (SGD,
    # lr 0.05, 2 steps moves them 1.5e-3 (autoencoder) to 0.2 (moco), measured 2026-11-24).
    assert moved > 10 * 1e-4


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_online_probe_trains_on_stop_gradient_features(inits, digits_batch, name):
    method, params, model_state = inits[name]
    assert params["online_probe"]["fc"]["kernel"].shape[-1] == 10
    _, batch = digits_batch

    def probe_loss(p):
        feats = method.encode(p, model_state, batch)["pooled"]
        return method.probe.loss(p, feats, batch)

    grads, metrics = jax.jit(jax.grad(probe_loss, has_aux=True))(params)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads["encoder"]))
    assert np.abs(np.asarray(grads["online_probe"]["fc"]["kernel"])).max() > 0
    # A zero-initialised head predicts uniformly: loss log(10) before any update.
    np.testing.assert_allclose(metrics["online_probe_loss"], np.log(10), rtol=1e-5)


def test_online_probe_learns_while_the_method_trains(runs):
    """The zero-initialised head starts at log(10) and its loss falls on the (fixed) batch as
    it trains jointly; a head cut off from its gradient would stay at log(10)."""
    losses = [float(h["online_probe_loss"]) for h in runs["vae"]["hist8"]]
    np.testing.assert_allclose(losses[0], np.log(10), rtol=1e-5)
    assert np.mean(losses[-3:]) < losses[0] - 0.01  # measured: 2.303 -> 2.27 in 12 steps
    assert all(0.0 <= float(h["online_probe_top1"]) <= 1.0 for h in runs["vae"]["hist8"])


def test_vae_elbo_decreases_on_real_digits(runs):
    hist = [float(h["neg_elbo"]) for h in runs["vae"]["hist8"]]
    assert np.mean(hist[-3:]) < 0.9 * np.mean(hist[:3])
    assert all(float(h["kl"]) >= 0 for h in runs["vae"]["hist8"])
