"""Fine-tuning from a real (tiny) pre-training workdir: modes, devices, job, predict, errors."""

import json

import jax
import numpy as np
import pytest

from jaxssl import sharding as mesh_lib
from jaxssl import validate
from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.finetune import job, lora, predict
from jaxssl.train import pretrain, skeleton

from .helpers import load_config, tiny_simclr_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """(workdir, data_dir) of a 2-step SimCLR run with a checkpoint."""
    data_dir = str(tmp_path_factory.mktemp("data"))
    config = tiny_simclr_config(data_dir)
    config.total_steps = 2
    config.eval.enabled = False
    workdir = tmp_path_factory.mktemp("simclr")
    pretrain.run(config, str(workdir))
    return workdir, data_dir


def tiny_ft_config(pretrained, mode="linear"):
    workdir, data_dir = pretrained
    c = load_config("finetune_digits")
    c.init_from = str(workdir)
    c.dataset.data_dir = data_dir
    c.model.widths = (8, 16)  # as tiny_simclr_config
    c.augment.image_size = 8
    c.batch_size = 32
    c.total_steps = 3
    c.log_every = 3
    c.checkpoint_every = 3
    c.eval.batch_size = 128
    c.optimizer.warmup_steps = 1
    c.finetune.mode = mode
    c.finetune.lora.target_patterns = (r"conv1/kernel$",)
    return c


def _batch(config, n=32):
    source = sources.get_source(config.dataset, "train")
    return skeleton.sample_batch(source, n)


def _train(config, devices, steps=3):
    """(initial state, final state, last metrics) of `steps` jitted fine-tune steps."""
    mesh = mesh_lib.make_mesh(devices)
    batch = _batch(config)
    state, parts = _state(config, mesh)
    initial = jax.device_get(state)
    fn = skeleton.jit_step(parts, config, state, mesh)
    for _ in range(steps):
        state, metrics = fn(state, mesh_lib.to_global_batch(batch, mesh))
    return parts.method.model, initial, jax.device_get(state), jax.device_get(metrics)


def _state(config, mesh):
    """(state as the skeleton builds it on a fresh run, the job's parts)."""
    parts = job.build(config, mesh)
    state = skeleton.init_state(parts, config, mesh)
    return (parts.init_from(state) if parts.init_from else state), parts


def _same(a, b) -> bool:
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _moved(a, b) -> bool:
    return all(
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_init_from_loads_the_pretrained_encoder(pretrained):
    import orbax.checkpoint as ocp

    config = tiny_ft_config(pretrained)
    state, _ = _state(config, mesh_lib.make_mesh())
    steps = sorted(
        int(p.name) for p in (pretrained[0] / "checkpoints").iterdir() if p.name.isdigit()
    )
    saved = ocp.PyTreeCheckpointer().restore(
        pretrained[0] / "checkpoints" / str(steps[-1]) / "state"
    )
    assert _same(state.params["encoder"], saved["params"]["encoder"])
    stats = state.model_state["batch_stats"]["encoder"]
    assert _same(stats, saved["model_state"]["batch_stats"]["encoder"])


def test_linear_keeps_encoder_bit_identical_and_trains_head(pretrained):
    config = tiny_ft_config(pretrained, "linear")
    _, initial, final, metrics = _train(config, jax.devices())
    assert _same(initial.params["encoder"], final.params["encoder"])
    assert _same(initial.model_state, final.model_state)  # batch statistics frozen too
    assert _moved(initial.params["head"], final.params["head"])
    assert np.isfinite(metrics["loss"])


def test_linear_builds_no_encoder_backward(pretrained):
    import jax.numpy as jnp

    from jaxssl.finetune import partition
    from jaxssl.finetune.method import FineTune
    from jaxssl.finetune.model import FineTuneModel
    from jaxssl.train import optim
    from jaxssl.train import step as step_lib
    from jaxssl.train.state import TrainState

    counts = {}
    for mode in ("linear", "full"):  # traced only (make_jaxpr on shapes): nothing compiles
        config = tiny_ft_config(pretrained, mode)
        batch = _batch(config)
        model = FineTuneModel(config, 10)
        params, model_state = jax.eval_shape(model.init, jax.random.PRNGKey(0), batch)
        labels, mults = partition.param_labels(params, config.finetune)
        tx = partition.make_optimizer(config.optimizer, 32, 3, labels, mults)
        state = jax.eval_shape(
            lambda p, m, tx=tx: TrainState(
                jnp.zeros((), jnp.int32), p, tx.init(p), m, jax.random.PRNGKey(0)
            ),
            params,
            model_state,
        )
        schedule = optim.make_schedule(config.optimizer, 32, 3)
        method = FineTune(model, labels, model_state)
        fn = step_lib.make_train_step(method, tx, schedule, trainable=method.mask)
        counts[mode] = str(jax.make_jaxpr(fn)(state, batch)).count("conv_general_dilated")
    assert counts["linear"] == 2  # the two forward convolutions of widths (8, 16), nothing else
    assert counts["full"] > counts["linear"]


def test_lora_changes_only_lora_and_head_and_merges_exactly(pretrained):
    config = tiny_ft_config(pretrained, "lora")
    config.finetune.update_batch_stats = False
    model, initial, final, _ = _train(config, jax.devices())
    assert _same(initial.params["encoder"], final.params["encoder"])
    assert _same(initial.model_state, final.model_state)
    assert list(final.params["lora"]) == ["conv1"]  # the target pattern only
    assert final.params["lora"]["conv1"]["kernel"]["a"].shape == (3 * 3 * 8, 4)  # rank 4
    assert _moved(
        initial.params["lora"]["conv1"]["kernel"]["b"], final.params["lora"]["conv1"]["kernel"]["b"]
    )
    assert _moved(initial.params["head"], final.params["head"])
    # Export: the merged plain encoder gives the LoRA model's features.
    x = model.inputs(_batch(config), None)
    out, feats, _ = model.apply(final.params, final.model_state, x, train=False)
    merged = lora.merge(final.params["encoder"], final.params["lora"], 8.0, 4)
    variables = {"params": merged, "batch_stats": final.model_state["batch_stats"]["encoder"]}
    pooled = model.encoder.apply(variables, x["x"], train=False)[0]
    np.testing.assert_allclose(pooled, feats["pooled"], rtol=1e-6, atol=1e-6)
    assert not np.allclose(merged["conv1"]["kernel"], final.params["encoder"]["conv1"]["kernel"])


def test_adapter_starts_as_identity_and_trains_only_adapters(pretrained):
    config = tiny_ft_config(pretrained, "adapter")
    model, initial, final, _ = _train(config, jax.devices())
    assert sorted(final.params["adapter"]) == ["bn0", "bn1"]
    assert _same(initial.params["encoder"], final.params["encoder"])
    assert _moved(initial.params["adapter"]["bn1"]["up"], final.params["adapter"]["bn1"]["up"])
    x = model.inputs(_batch(config), None)
    with_adapters = model.apply(initial.params, initial.model_state, x, train=False)[1]
    bare = {k: v for k, v in initial.params.items() if k != "adapter"}
    without = model.apply(bare, initial.model_state, x, train=False)[1]
    np.testing.assert_array_equal(with_adapters["pooled"], without["pooled"])  # up is zero


def test_one_device_equals_eight_devices(pretrained):
    config = tiny_ft_config(pretrained, "full")
    config.finetune.train_augment = True
    _, _, one, m1 = _train(config, jax.devices()[:1], steps=2)
    _, initial, eight, m8 = _train(config, jax.devices(), steps=2)
    np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(eight), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert _moved(initial.params["encoder"]["conv0"], eight.params["encoder"]["conv0"])


def test_finetune_job_then_predict_and_embed(pretrained, tmp_path):
    config = tiny_ft_config(pretrained, "full")
    config.finetune.label_fraction = 0.05
    validate.validate(config)
    summary = job.run(config, str(tmp_path / "ft"))
    written = json.loads((tmp_path / "ft" / "summary.json").read_text())
    for key in ("top1", "top5", "precision_macro", "recall_macro", "f1_macro"):
        assert 0.0 <= written[key] <= 1.0
    assert written["labelled_examples"] == 72  # 5% of 1,438, class-balanced
    assert summary["params_trainable"] == summary["params_total"]
    assert (tmp_path / "ft" / "plots" / "confusion_matrix.png").stat().st_size > 0

    pred_cfg = load_config("predict_digits")
    pred_cfg.dataset.data_dir = pretrained[1]
    pred_cfg.init_from = str(tmp_path / "ft")
    validate.validate(pred_cfg)
    predict.run(pred_cfg, str(tmp_path / "pred"))
    with np.load(tmp_path / "pred" / "predictions_test.npz") as f:
        assert f["predictions"].shape == f["labels"].shape == (written["test_examples"],)
        np.testing.assert_array_equal(f["predictions"], f["logits"].argmax(-1))
        from sklearn.metrics import accuracy_score, f1_score

        # The summary's metrics, recomputed by scikit-learn from the written predictions.
        np.testing.assert_allclose(accuracy_score(f["labels"], f["predictions"]), written["top1"])
        np.testing.assert_allclose(
            f1_score(f["labels"], f["predictions"], average="macro", labels=range(10)),
            written["f1_macro"],
            rtol=1e-5,
        )

    pred_cfg.job, pred_cfg.init_from = "embed", str(pretrained[0])
    validate.validate(pred_cfg)
    predict.run(pred_cfg, str(tmp_path / "emb"))
    # Independently: the test images in dataset order through the encoder module itself,
    # with the checkpoint read by orbax directly (no jaxssl evaluation or loading code).
    import orbax.checkpoint as ocp

    from jaxssl.augment import views
    from jaxssl.methods.base import build_encoder

    source = sources.get_source(pred_cfg.dataset, "test")
    images = np.stack([source[i]["image"] for i in range(len(source))])
    labels = np.array([source[i]["label"] for i in range(len(source))])
    ckpts = pretrained[0] / "checkpoints"
    step = max(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    saved = ocp.PyTreeCheckpointer().restore(ckpts / str(step) / "state")
    run_cfg = tiny_ft_config(pretrained)
    encoder = build_encoder(run_cfg.model)
    variables = {
        "params": saved["params"]["encoder"],
        "batch_stats": saved["model_state"]["batch_stats"]["encoder"],
    }
    pooled = encoder.apply(variables, views.eval_view(images, run_cfg.augment), train=False)[0]
    with np.load(tmp_path / "emb" / "embeddings_test.npz") as f:
        np.testing.assert_array_equal(f["labels"], labels)  # every example, in order
        np.testing.assert_allclose(f["embeddings"], pooled, rtol=1e-5, atol=1e-5)


def test_bad_init_from_is_a_config_error_before_compiling(pretrained, tmp_path):
    config = tiny_ft_config(pretrained)
    config.init_from = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="is not a directory"):
        validate.validate(config)
    (tmp_path / "empty").mkdir()
    config.init_from = str(tmp_path / "empty")
    with pytest.raises(ConfigError, match="has no checkpoint"):
        validate.validate(config)
    config = tiny_ft_config(pretrained)
    config.model.widths = (8, 32)
    with pytest.raises(ConfigError, match=r"conv1/kernel: checkpoint \(3, 3, 8, 16\) vs config"):
        validate.validate(config)
    config = tiny_ft_config(pretrained, "predict")
    with pytest.raises(ConfigError, match="finetune.mode='predict' is unknown"):
        validate.validate(config)
