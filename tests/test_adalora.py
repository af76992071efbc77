"""AdaLoRA against the paper's formulas: cubic budget, importance EMAs, global top-b pruning."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxssl import validate
from jaxssl.config import ConfigError
from jaxssl.finetune import adalora, job, partition
from jaxssl.finetune.method import FineTune
from jaxssl.finetune.model import FineTuneModel
from jaxssl.train import optim
from jaxssl.train import step as step_lib
from jaxssl.train.state import TrainState

from .helpers import load_config

T, T_I, T_F, DT = 24, 4, 6, 3  # total steps, t_i, t_f, delta_T
B0, BT = 18, 6  # 3 matrices x init_rank 6 -> 3 x target_rank 2
BETA1, BETA2 = 0.85, 0.85


def paper_budget(t: int) -> int:
    """Eq. 12 (Zhang et al. 2023), evaluated at the last pruning step t_i + k * delta_T <= t."""
    if t < T_I:
        return B0
    if t >= T - T_F:
        return BT
    tq = T_I + (t - T_I) // DT * DT
    return int(BT + (B0 - BT) * (1 - (tq - T_I) / (T - T_I - T_F)) ** 3)


def _config():
    c = load_config("finetune_digits")
    c.model.widths = (4, 8, 8)  # 3 conv kernels: [3,3,1,4], [3,3,4,8], [3,3,8,8]
    c.augment.image_size = 8
    c.batch_size, c.total_steps = 16, T
    c.optimizer.learning_rate, c.optimizer.warmup_steps = 3e-2, 1
    ft = c.finetune
    ft.mode, ft.train_augment = "adalora", False
    ft.lora.target_patterns = (r"conv\d+/kernel$",)
    a = ft.adalora
    a.init_rank, a.target_rank, a.delta_t = 6, 2, DT
    a.warmup_fraction, a.final_fraction = T_I / T, T_F / T
    return c


def test_budget_schedule_is_the_papers_cubic():
    s = adalora.Schedule(B0, BT, T_I, T_F, T, DT)
    got = [int(s.budget(t)) for t in range(T)]
    assert got == [paper_budget(t) for t in range(T)]
    assert got[0] == B0 and got[-1] == BT and len(set(got)) > 3  # it really decreases
    prunes = [t for t in range(T) if s.prunes(t)]
    assert prunes == [4, 7, 10, 13, 16, 18]  # every delta_T from t_i, then once at T - t_f
    jitted = jax.jit(lambda t: (s.budget(t), s.prunes(t)))
    assert [int(jitted(jnp.int32(t))[0]) for t in range(T)] == got


def test_merge_equals_adapted_forward_and_masked_values_are_zero():
    rng = np.random.default_rng(0)
    w, x = rng.normal(size=(3, 3, 2, 4)), rng.normal(size=(5, 18))
    t = {"p": rng.normal(size=(18, 3)), "lam": rng.normal(size=3), "q": rng.normal(size=(3, 4))}
    mask = np.array([1.0, 0.0, 1.0])
    enc, ada = {"conv": {"kernel": w}}, {"conv": {"kernel": t}}
    merged = adalora.merge(enc, ada, {"conv": {"kernel": mask}}, alpha=6.0, rank=3)
    adapted = x @ w.reshape(18, 4) + 2.0 * ((x @ t["p"]) * (t["lam"] * mask)) @ t["q"]
    np.testing.assert_allclose(x @ merged["conv"]["kernel"].reshape(18, 4), adapted, rtol=1e-5)
    # The masked singular value contributes exactly nothing, whatever its stored value.
    t2 = {**t, "lam": t["lam"] * np.array([1.0, 1e6, 1.0])}
    merged2 = adalora.merge(enc, {"conv": {"kernel": t2}}, {"conv": {"kernel": mask}}, 6.0, 3)
    np.testing.assert_array_equal(merged2["conv"]["kernel"], merged["conv"]["kernel"])


def test_gradient_from_the_forward_pass_is_the_gradient():
    def fn(d, rest):
        return jnp.sum(jnp.sin(d["a"]) * rest[0]) ** 2, {"aux": rest[1]}

    d, rest = {"a": jnp.arange(4.0)}, (jnp.ones(4) * 0.5, jnp.int32(3))

    def outer(d):
        loss, aux, g = adalora.value_and_grad_in_forward(fn, d, rest)
        return loss, g

    (loss, g_fwd), g = jax.jit(jax.value_and_grad(outer, has_aux=True))(d)
    expected = jax.grad(lambda d: fn(d, rest)[0])(d)
    np.testing.assert_allclose(g["a"], expected["a"], rtol=1e-6)
    np.testing.assert_allclose(g_fwd["a"], expected["a"], rtol=1e-6)
    np.testing.assert_allclose(loss, fn(d, rest)[0], rtol=1e-6)


def _np_scores(state):
    """Eq. 11 in numpy: S = s(lambda) + mean_j s(P_j.) + mean_j s(Q_.j), s = I_bar * U_bar."""
    s = jax.tree.map(lambda a, b: np.asarray(a) * np.asarray(b), state["ipt"], state["unc"])
    flat = traverse_util.flatten_dict(s)
    paths = sorted({k[:-1] for k in flat})
    return paths, np.concatenate(
        [flat[(*k, "lam")] + flat[(*k, "p")].mean(0) + flat[(*k, "q")].mean(1) for k in paths]
    )


def _masks(state, paths):
    flat = traverse_util.flatten_dict(state["mask"])
    return np.concatenate([np.asarray(flat[k]) for k in paths])


def test_adalora_step_honours_the_budget_with_paper_importance():
    config = _config()
    model = FineTuneModel(config, 10)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 256, (16, 8, 8, 1)).astype(np.uint8),
        "label": rng.integers(0, 10, 16).astype(np.int32),
    }
    params, model_state = jax.jit(model.init)(jax.random.PRNGKey(0), batch)
    labels, mults = partition.param_labels(params, config.finetune)
    method = FineTune(model, labels, model_state)
    tx = partition.make_optimizer(config.optimizer, 16, T, labels, mults)
    schedule = optim.make_schedule(config.optimizer, 16, T)
    state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), model_state,
                       jax.random.PRNGKey(1))  # fmt: skip
    step = jax.jit(step_lib.make_train_step(method, tx, schedule, trainable=method.mask))
    assert set(partition.flat_paths(labels)) >= {"adalora/conv2/kernel/lam"}
    trainable = {p for p, lab in partition.flat_paths(labels).items() if lab != "frozen"}
    assert all(p.startswith(("adalora/", "head/")) for p in trainable)

    def objective(p, st, rng):  # the loss without the custom_vjp path, for jax.grad
        return method._loss(p, st, batch, rng)[0]

    grad_fn = jax.jit(jax.grad(objective))
    ipt = unc = jax.tree.map(np.zeros_like, jax.device_get(params["adalora"]))
    encoder0 = jax.device_get(params["encoder"])
    pruned_something = False
    for t in range(T):
        before = jax.device_get(state)
        g = grad_fn(state.params, state.model_state, jax.random.fold_in(state.rng, t))
        state, metrics = step(state, batch)
        st = jax.device_get(state.model_state["adalora"])
        # Eqs. 8-10 with the pre-update params and this step's gradient.
        sens = jax.tree.map(
            lambda p, gr: np.abs(np.asarray(p) * np.asarray(gr)),
            before.params["adalora"],
            jax.device_get(g["adalora"]),
        )
        ipt = jax.tree.map(lambda o, i: BETA1 * o + (1 - BETA1) * i, ipt, sens)
        unc = jax.tree.map(lambda o, i, b: BETA2 * o + (1 - BETA2) * np.abs(i - b), unc, sens, ipt)
        for got, want in ((st["ipt"], ipt), (st["unc"], unc)):
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-9)
        # The budget after step t, and global top-b(t) by eq. 11 at the pruning steps.
        paths, scores = _np_scores(st)
        masks = _masks(st, paths)
        assert set(np.unique(masks)) <= {0.0, 1.0}
        assert masks.sum() == paper_budget(t), t
        if method.schedule.prunes(t):
            keep = np.argsort(-scores, kind="stable")[: paper_budget(t)]
            np.testing.assert_array_equal(np.flatnonzero(masks), np.sort(keep))
        else:
            np.testing.assert_array_equal(masks, _masks(before.model_state["adalora"], paths))
        pruned_something |= masks.sum() < B0
        assert metrics["adalora_rank"] == _masks(before.model_state["adalora"], paths).sum()
    assert pruned_something
    # Orthogonality regulariser (eq. 4) as logged, gamma * sum ||P^T P - I||^2 + ||Q Q^T - I||^2.
    flat_p = traverse_util.flatten_dict(jax.device_get(state.params["adalora"]))
    reg = 0.0
    for k in paths:
        p, q = (np.asarray(flat_p[(*k, n)], np.float64) for n in ("p", "q"))
        reg += ((p.T @ p - np.eye(6)) ** 2).sum() + ((q @ q.T - np.eye(6)) ** 2).sum()
    _, metrics = step(state, batch)
    np.testing.assert_allclose(metrics["adalora_orth"], 0.1 * reg, rtol=1e-4)
    # Frozen base weights are untouched; the merged kernels hold exactly the unmasked triplets.
    enc = jax.tree.leaves(state.params["encoder"])
    for a, b in zip(enc, jax.tree.leaves(encoder0), strict=True):
        np.testing.assert_array_equal(a, b)
    merged = jax.device_get(model.encoder_params(state.params, state.model_state))
    flat_m = traverse_util.flatten_dict(jax.device_get(state.model_state["adalora"]["mask"]))
    for k in paths:
        w0 = traverse_util.flatten_dict(encoder0)[k]
        keep = np.flatnonzero(flat_m[k])
        p, lam, q = (np.asarray(flat_p[(*k, n)]) for n in ("p", "lam", "q"))
        d = (8.0 / 6) * (p[:, keep] * lam[keep]) @ q[keep]
        np.testing.assert_allclose(
            traverse_util.flatten_dict(merged)[k], w0 + d.reshape(w0.shape), rtol=1e-5, atol=1e-6
        )


def test_finetune_job_reports_final_ranks_and_checks_keys(tmp_path):
    config = _config()
    config.dataset.data_dir = str(tmp_path / "data")
    config.total_steps, config.log_every, config.checkpoint_every = 8, 4, 8
    config.batch_size, config.eval.batch_size = 32, 128
    config.finetune.adalora.warmup_fraction, config.finetune.adalora.final_fraction = 0.25, 0.25
    validate.validate(config)
    summary = job.run(config, str(tmp_path / "ft"))
    assert set(summary["adalora_ranks"]) == {f"conv{i}/kernel" for i in range(3)}
    assert summary["adalora_total_rank"] == sum(summary["adalora_ranks"].values()) == BT
    saved = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert saved["adalora_ranks"] == summary["adalora_ranks"] and saved["mode"] == "adalora"
    bad = _config()
    bad.finetune.adalora.target_rank = 7
    with pytest.raises(ConfigError, match="target_rank"):
        validate.validate(bad)
