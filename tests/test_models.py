"""Tests of the encoders, heads and model registry (CPU, 8 virtual devices)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxssl import models
from jaxssl.models import LinearHead, MLPHead, get_model, model_names, register_model
from jaxssl.models.resnet import ResidualBlock


def shapes(model, x_shape, train=False):
    """Variables and outputs of init+apply as ShapeDtypeStructs (traced, never compiled)."""

    def run():
        x = jnp.zeros(x_shape)
        variables = model.init(jax.random.key(0), x, train=False)
        return variables, model.apply(variables, x, train=False)

    return jax.eval_shape(run)


def num_params(variables) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(variables["params"]))


def resnet_formula(stage_sizes, bottleneck: bool, stem_kernel: int) -> int:
    """Conv weights plus BN (gamma, beta) of a torchvision-style ResNet without the fc layer."""
    total = stem_kernel**2 * 3 * 64 + 2 * 64
    cin = 64
    for stage, blocks in enumerate(stage_sizes):
        c = 64 * 2**stage
        cout = 4 * c if bottleneck else c
        for block in range(blocks):
            if bottleneck:
                total += cin * c + 9 * c * c + c * cout + 2 * (c + c + cout)
            else:
                total += 9 * cin * c + 9 * c * c + 2 * (c + c)
            if cin != cout or (stage > 0 and block == 0):
                total += cin * cout + 2 * cout  # projection shortcut
            cin = cout
    return total


@pytest.mark.parametrize(
    "name,kwargs,size,spatial,dim",
    [
        ("cnn_small", {"widths": (4, 8, 16)}, 8, 2, 16),
        ("resnet18", {"stem": "cifar", "width": 0.125}, 32, 4, 64),
        ("resnet18", {"stem": "imagenet", "width": 0.125}, 64, 2, 64),
        ("resnet34", {"stem": "cifar", "width": 0.125}, 32, 4, 64),
        ("resnet34", {"stem": "imagenet", "width": 0.125}, 64, 2, 64),
        ("resnet50", {"stem": "cifar", "width": 0.125}, 32, 4, 256),
        ("resnet50", {"stem": "imagenet", "width": 0.125}, 64, 2, 256),
    ],
)
def test_encoder_shapes(name, kwargs, size, spatial, dim):
    model = get_model(name, **kwargs)
    variables, (out, feats) = shapes(model, (2, size, size, 3))
    assert model.features_dim == dim
    assert out.shape == (2, dim) and feats["pooled"].shape == (2, dim)
    assert feats["feature_map"].shape == (2, spatial, spatial, dim)
    assert "batch_stats" in variables


def test_cifar_stem_keeps_resolution():
    _, (_, feats) = shapes(get_model("resnet18", stem="cifar"), (2, 32, 32, 3))
    assert feats["stage1"].shape == (2, 32, 32, 64)
    assert feats["feature_map"].shape == (2, 4, 4, 512)
    _, (_, feats) = shapes(get_model("resnet18", stem="imagenet"), (2, 32, 32, 3))
    assert feats["stage1"].shape == (2, 8, 8, 64)  # 7x7/2 conv then 3x3/2 max-pool


@pytest.mark.parametrize(
    "name,stage_sizes,bottleneck,expected",
    [
        ("resnet18", (2, 2, 2, 2), False, 11_176_512),  # torchvision 11,689,512 minus fc
        ("resnet34", (3, 4, 6, 3), False, 21_284_672),  # torchvision 21,797,672 minus fc
        ("resnet50", (3, 4, 6, 3), True, 23_508_032),  # torchvision 25,557,032 minus fc
    ],
)
def test_resnet_param_count(name, stage_sizes, bottleneck, expected):
    assert resnet_formula(stage_sizes, bottleneck, stem_kernel=7) == expected
    variables, _ = shapes(get_model(name, stem="imagenet"), (1, 64, 64, 3))
    assert num_params(variables) == expected
    variables, _ = shapes(get_model(name, stem="cifar"), (1, 32, 32, 3))
    assert num_params(variables) == resnet_formula(stage_sizes, bottleneck, stem_kernel=3)


def test_width_multiplier_and_dtype():
    variables, (out, feats) = shapes(
        get_model("resnet50", width=2, dtype=jnp.bfloat16), (2, 32, 32, 3)
    )
    assert out.shape == (2, 4096) and out.dtype == jnp.float32
    assert feats["feature_map"].dtype == jnp.bfloat16
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_last_bn(block, zero_init):
    module = ResidualBlock(4, strides=2, block=block, zero_init_residual=zero_init)
    params = module.init(jax.random.key(0), jnp.ones((1, 4, 4, 8)), train=False)["params"]
    last = params["bn2" if block == "basic" else "bn3"]["scale"]
    np.testing.assert_array_equal(last, 0.0 if zero_init else 1.0)
    np.testing.assert_array_equal(params["bn1"]["scale"], 1.0)
    assert "proj_conv" in params  # stride 2 needs a projection shortcut


def test_batchnorm_train_uses_batch_eval_uses_running_averages():
    model = get_model("cnn_small", widths=(4, 8))
    x = jax.random.normal(jax.random.key(1), (32, 8, 8, 1)) * 3.0 + 1.0
    variables = model.init(jax.random.key(0), x, train=False)
    (out, _), state = model.apply(
        variables,
        x,
        train=True,
        mutable=["batch_stats", "intermediates"],
        capture_intermediates=True,
    )
    conv = state["intermediates"]["conv0"]["__call__"][0]
    bn = state["intermediates"]["bn0"]["__call__"][0]
    # Train mode normalizes each channel over the batch (and the spatial positions).
    np.testing.assert_allclose(bn.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(bn.var(axis=(0, 1, 2)), 1.0, atol=1e-3)
    # Running averages move 10% (momentum 0.9) toward the batch statistics.
    stats = state["batch_stats"]["bn0"]
    np.testing.assert_allclose(stats["mean"], 0.1 * conv.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * conv.var(axis=(0, 1, 2)), rtol=1e-4)
    # Eval mode normalizes with the running averages and mutates nothing.
    new_vars = {"params": variables["params"], "batch_stats": state["batch_stats"]}
    _, captured = model.apply(
        new_vars, x, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    bn_eval = captured["intermediates"]["bn0"]["__call__"][0]
    expected = (conv - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5)
    np.testing.assert_allclose(bn_eval, expected, atol=1e-4)
    # So one example's eval output does not depend on the rest of the batch; in train it does.
    eval_one, _ = model.apply(new_vars, x[:1], train=False)
    eval_all, _ = model.apply(new_vars, x, train=False)
    np.testing.assert_allclose(eval_one[0], eval_all[0], atol=1e-5)
    (train_one, _), _ = model.apply(new_vars, x[:4], train=True, mutable=["batch_stats"])
    assert not np.allclose(train_one[0], out[0], atol=1e-3)


def test_sharded_batch_gives_global_batch_statistics():
    model = get_model("resnet18", stem="cifar", width=0.125, zero_init_residual=False)
    x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
    variables = jax.jit(model.init, static_argnames="train")(jax.random.key(0), x, train=False)
    step = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    ref_out, ref_state = step(variables, x)

    mesh = Mesh(np.array(jax.devices()), ("data",))
    assert mesh.size == 8
    x_sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
    assert {s.data.shape[0] for s in x_sharded.addressable_shards} == {2}
    variables_repl = jax.device_put(variables, NamedSharding(mesh, P()))
    out, state = step(variables_repl, x_sharded)

    # Statistics summed in 8 partial sums instead of one: float32 reassociation, ~1e-5
    # relative to O(1) activations; a per-device statistic would differ by O(0.1).
    np.testing.assert_allclose(out[0], ref_out[0], rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(
        out[1]["feature_map"], ref_out[1]["feature_map"], rtol=2e-5, atol=2e-5
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5), state, ref_state
    )
    # Statistics of one device's shard alone differ, so the comparison above has teeth.
    _, shard_state = step(variables, x[:2])
    assert not np.allclose(
        shard_state["batch_stats"]["stem_bn"]["var"], state["batch_stats"]["stem_bn"]["var"]
    )


def test_mlp_head_shapes():
    x = jnp.ones((4, 32))
    for head, n_bn in [
        (MLPHead((16, 16), 8), 2),
        (MLPHead((16,), 8, use_bn=False), 0),
        (MLPHead((16,), 8, last_bn=True), 2),
    ]:
        variables, out = jax.eval_shape(
            lambda h=head: (
                v := h.init(jax.random.key(0), x, train=False),
                h.apply(v, x, train=True, mutable=["batch_stats"])[0],
            )
        )
        assert out.shape == (4, 8) and out.dtype == jnp.float32
        assert len(variables.get("batch_stats", {})) == n_bn
    head = LinearHead(10)
    variables = head.init(jax.random.key(0), x)
    np.testing.assert_array_equal(head.apply(variables, x), 0.0)  # zero-init probe
    assert head.apply(variables, x, train=True).shape == (4, 10)


def test_registry():
    assert set(model_names()) >= {"cnn_small", "resnet18", "resnet34", "resnet50"}
    with pytest.raises(ValueError, match="valid names: .*resnet18"):
        get_model("resnet19")
    with pytest.raises(ValueError, match="valid stems"):
        get_model("resnet18", stem="tiny")
    with pytest.raises(TypeError, match="cnn_small"):
        get_model("cnn_small", stem="cifar")
    assert get_model("resnet18", stem="imagenet", width=2).width == 2


def test_register_model(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))

    @register_model("tiny_cnn")
    def tiny_cnn(**kwargs):
        return models.CNNEncoder(widths=(4,), **kwargs)

    assert "tiny_cnn" in model_names()
    assert get_model("tiny_cnn").widths == (4,)
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny_cnn", tiny_cnn)
