"""Fine-tuning runs on the one job skeleton: skip_nonfinite, fsdp, bf16, remat, global clipping,
config conflicts on resume, and the checkpoint module's relative paths."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxssl import jobs
from jaxssl import sharding as mesh_lib
from jaxssl.config import ConfigError
from jaxssl.finetune import job, partition
from jaxssl.methods.base import Method
from jaxssl.train import checkpoint, optim, precision, resume, skeleton

from .test_finetune import pretrained, tiny_ft_config  # noqa: F401 (pretrained: a fixture)


class _NaNAt(Method):
    """Wraps a method; its loss is NaN at one step (a stand-in for a diverging fine-tune)."""

    def __init__(self, inner, bad_step):
        super().__init__(inner.config)
        self.inner, self.bad_step, self.encoder = inner, bad_step, inner.encoder

    def init(self, rng, batch):
        return self.inner.init(rng, batch)

    def loss(self, params, model_state, batch, rng, step):
        loss, aux = self.inner.loss(params, model_state, batch, rng, step)
        return jnp.where(step == self.bad_step, jnp.nan, loss), aux


def _fresh(config, mesh):
    parts = job.build(precision.with_precision(config), mesh)
    state = skeleton.init_state(parts, config, mesh)
    return parts, parts.init_from(state)


def _batch(config, mesh):
    from jaxssl.data import sources

    source = sources.get_source(config.dataset, "train")
    return mesh_lib.to_global_batch(skeleton.sample_batch(source, config.batch_size), mesh)


def test_finetune_skip_nonfinite_leaves_state_unchanged(pretrained):  # noqa: F811
    config = tiny_ft_config(pretrained, "full")
    config.skip_nonfinite = True
    mesh = mesh_lib.make_mesh()
    parts, state = _fresh(config, mesh)
    parts.method = _NaNAt(parts.method, bad_step=1)
    step = skeleton.jit_step(parts, config, state, mesh)
    batch = _batch(config, mesh)
    state, m0 = step(state, batch)
    before = jax.device_get((state.params, state.opt_state, state.model_state))
    state, m1 = step(state, batch)  # the NaN step
    after = jax.device_get((state.params, state.opt_state, state.model_state))
    assert float(m0["finite"]) == 1.0 and float(m1["finite"]) == 0.0
    assert int(state.step) == 2
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        np.testing.assert_array_equal(a, b)  # nothing applied, not even to the head
    state, m2 = step(state, batch)
    assert float(m2["finite"]) == 1.0
    moved = jax.device_get(state.params["head"]["fc"]["kernel"])
    assert not np.array_equal(moved, before[0]["head"]["fc"]["kernel"])


def test_finetune_fsdp_bf16_remat_reach_the_step(pretrained):  # noqa: F811
    config = tiny_ft_config(pretrained, "full")
    config.mesh.fsdp, config.mesh.fsdp_min_size = 4, 64
    mesh = mesh_lib.make_mesh(fsdp=4)
    parts, state = _fresh(config, mesh)
    kernel = state.params["encoder"]["conv1"]["kernel"]  # 3x3x8x16: split on its 16 outputs
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, None, None, mesh_lib.FSDP_AXIS)
    assert {s.data.shape for s in kernel.addressable_shards} == {(3, 3, 8, 4)}
    # fsdp=4 gives the numbers of pure data parallelism (1 x 8 devices).
    step = skeleton.jit_step(parts, config, state, mesh)
    _, got = step(state, _batch(config, mesh))
    dp = mesh_lib.make_mesh()
    config_dp = config.copy_and_resolve_references()
    config_dp.mesh.fsdp = 1
    parts_dp, state_dp = _fresh(config_dp, dp)
    _, want = skeleton.jit_step(parts_dp, config_dp, state_dp, dp)(state_dp, _batch(config, dp))
    np.testing.assert_allclose(float(got["loss"]), float(want["loss"]), rtol=1e-5)
    np.testing.assert_allclose(float(got["grad_norm"]), float(want["grad_norm"]), rtol=1e-4)

    # bf16 and remat reach the fine-tune encoder: bf16 convolutions and a remat'd backward.
    config.precision, config.remat = "bfloat16", True
    config.mesh.fsdp = 1
    parts = job.build(precision.with_precision(config), dp)
    encoder = parts.method.model.encoder
    assert encoder.dtype == "bfloat16" and encoder.remat is True
    abstract = jax.eval_shape(lambda: skeleton.init_state(parts, config, dp))
    fn = skeleton.jit_step(parts, config, abstract, dp)
    text = str(jax.make_jaxpr(fn)(abstract, _batch(config, dp)))
    assert "checkpoint" in text or "remat" in text  # jax.checkpoint appears in the jaxpr
    assert "bf16" in text


def test_finetune_clips_by_the_global_norm_of_all_groups():
    params = {"encoder": {"w": jnp.ones((2, 2))}, "head": {"w": jnp.ones((2, 2))}}
    grads = {"encoder": {"w": jnp.full((2, 2), 3.0)}, "head": {"w": jnp.full((2, 2), 4.0)}}
    opt = ml_collections.ConfigDict(
        dict(
            name="sgd",
            learning_rate=1.0,
            weight_decay=0.0,
            warmup_steps=0,
            momentum=0.0,
            grad_clip_norm=1.0,
            schedule="constant",
        )
    )
    labels = {"encoder": {"w": "lr_x0.5"}, "head": {"w": "lr_x1"}}  # layer-decay style groups
    tx = partition.make_optimizer(opt, 256, 10, labels, {"lr_x0.5": 0.5, "lr_x1": 1.0})
    state = tx.init(params)
    _, state = tx.update(grads, state, params)  # step 0 (the schedule's lr is 0 there)
    updates, _ = tx.update(grads, state, params)
    lr = float(optim.make_schedule(opt, 256, 10)(1))
    norm = float(optax.global_norm(grads))  # sqrt(4 * 9 + 4 * 16) = 10 over both groups
    np.testing.assert_allclose(norm, 10.0)
    # Plain SGD (momentum 0): -lr * multiplier * g / 10 with ONE norm; clipping each group
    # by its own norm would give -lr * 0.5 * 3 / 6 and -lr * 4 / 8 instead.
    np.testing.assert_allclose(updates["head"]["w"], -lr * 4.0 / norm * np.ones((2, 2)), rtol=1e-5)
    np.testing.assert_allclose(
        updates["encoder"]["w"], -lr * 0.5 * 3.0 / norm * np.ones((2, 2)), rtol=1e-5
    )


def test_changing_finetune_mode_on_resume_is_a_config_conflict(pretrained, tmp_path):  # noqa: F811
    config = tiny_ft_config(pretrained, "linear")
    config.total_steps = config.checkpoint_every = 1
    config.eval.enabled = False
    workdir = tmp_path / "ft"
    jobs.run(config, str(workdir))
    assert (workdir / jobs.DONE_FILE).exists()
    changed = config.copy_and_resolve_references()
    changed.finetune.mode = "lora"
    with pytest.raises(ConfigError, match=r"finetune.mode: checkpoint 'linear' vs now 'lora'"):
        resume.resolve_workdir(changed, workdir)
    changed.finetune.mode, changed.finetune.label_smoothing = "linear", 0.1  # compatible
    assert resume.resolve_workdir(changed, workdir) == workdir
    with pytest.raises(SystemExit) as info:  # the CLI path: exit 2 before building anything
        changed.finetune.lora.rank = 8
        jobs.run(changed, str(workdir))
    assert info.value.code == 2


def test_checkpoints_are_read_from_relative_and_home_paths(pretrained, monkeypatch):  # noqa: F811
    workdir = pretrained[0]
    monkeypatch.chdir(workdir.parent)
    run = checkpoint.RunCheckpoint(workdir.name)  # relative, as the README's commands pass it
    assert run.workdir == workdir and run.shapes("params.encoder")
    run.close()
    monkeypatch.setenv("HOME", str(workdir.parent))
    assert checkpoint.resolve(f"~/{workdir.name}") == workdir
    assert str(checkpoint.resolve("gs://bucket/run")) == "gs://bucket/run"
    with pytest.raises(ConfigError, match="is not a directory"):
        checkpoint.RunCheckpoint(os.path.join("no", "such", "run"))
