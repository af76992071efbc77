"""FSDP equals pure data parallelism; bf16 compute and remat match float32 within tolerance."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxssl import methods, models
from jaxssl import sharding as mesh_lib
from jaxssl.data import sources
from jaxssl.sharding import FSDP_AXIS, leaf_spec
from jaxssl.train import optim, precision
from jaxssl.train import step as step_lib

from .test_fault_tolerance import cache_env, run_config  # noqa: F401 (cache_env: a fixture)


@pytest.mark.parametrize(
    "shape, size, min_size, expected",
    [
        ((3, 3, 8, 16), 4, 0, P(None, None, None, FSDP_AXIS)),  # largest divisible dim
        ((16, 6), 4, 0, P(FSDP_AXIS, None)),
        ((6, 10), 4, 0, P()),  # nothing divisible: whole
        ((16,), 4, 100, P()),  # below min_size: whole
        ((), 4, 0, P()),  # scalars (step, counts)
        ((16, 16), 1, 0, P()),  # no fsdp axis
    ],
)
def test_leaf_spec_rule(shape, size, min_size, expected):
    assert leaf_spec(shape, size, min_size) == expected


@pytest.fixture(scope="module")
def batch_config(tmp_path_factory, cache_env):  # noqa: F811 (the imported fixture)
    # run_config: the same program as test_fault_tolerance's reference, so it compiles once.
    config = run_config(str(tmp_path_factory.mktemp("data")))
    source = sources.get_source(config.dataset, "train")
    images = np.stack([source[i]["image"] for i in range(config.batch_size)])
    labels = np.array([source[i]["label"] for i in range(config.batch_size)], np.int32)
    return config, {"image": images, "label": labels}


def _train(config, batch, fsdp=1, n_steps=2):
    mesh = mesh_lib.make_mesh(jax.devices(), fsdp=fsdp)
    method = methods.get_method(precision.with_precision(config))
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
    state = step_lib.init_state(method, tx, config.seed, batch, mesh, fsdp_min_size=64)
    # Made on the mesh: each leaf comes out of init split as leaf_spec asks for its shape.
    want = jax.tree.leaves(mesh_lib.tree_shardings(state, mesh, 64))
    for leaf, sharding in zip(jax.tree.leaves(state), want, strict=True):
        assert leaf.sharding.is_equivalent_to(sharding, leaf.ndim), (leaf.shape, leaf.sharding)
        assert leaf.addressable_shards[0].data.shape == sharding.shard_shape(leaf.shape)
    step = step_lib.jit_train_step(step_lib.make_train_step(method, tx, schedule), state, mesh)
    losses = []
    for _ in range(n_steps):
        state, metrics = step(state, mesh_lib.to_global_batch(batch, mesh))
        losses.append(float(metrics["loss"]))
    return state, np.array(losses)


@pytest.fixture(scope="module")
def data_parallel(batch_config):
    config, batch = batch_config
    state, losses = _train(config, batch)
    return jax.device_get(state), losses


def _assert_close(a, b, rtol, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_fsdp_equals_data_parallel(batch_config, data_parallel):
    config, batch = batch_config
    state, losses = _train(config, batch, fsdp=4)
    # Params and optimizer moments really are split over fsdp (a (3,3,8,16) kernel: 4 ways).
    kernel = state.params["encoder"]["conv1"]["kernel"]
    assert kernel.sharding.spec == P(None, None, None, FSDP_AXIS)
    assert kernel.addressable_shards[0].data.shape == (3, 3, 8, 4)
    mu = [x for x in jax.tree.leaves(state.opt_state) if x.shape == kernel.shape]
    assert mu and all(m.sharding.spec == kernel.sharding.spec for m in mu)
    ref_state, ref_losses = data_parallel
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    _assert_close(jax.device_get(state), ref_state, rtol=1e-4, atol=1e-5)


def test_precision_and_remat_reach_the_encoder(batch_config):
    config = batch_config[0].copy_and_resolve_references()
    config.precision, config.remat = "bfloat16", True
    encoder = methods.get_method(precision.with_precision(config)).encoder
    assert encoder.dtype == "bfloat16" and encoder.remat is True
    assert "dtype" not in precision.with_precision(batch_config[0]).model  # default: untouched


def _loss_and_grads(model, x, jaxpr=None):
    variables = model.init(jax.random.PRNGKey(0), x, train=False)

    def loss(params):
        (out, _), _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return jax.numpy.mean(out.astype(jax.numpy.float32) ** 2)

    if jaxpr is not None:  # the traced program, to inspect what the switch changed
        jaxpr.append(str(jax.make_jaxpr(jax.value_and_grad(loss))(variables["params"])))
    value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
    return float(value), grads


@pytest.mark.parametrize(
    "name, kwargs, switch, loss_rtol, grad_rel_err, grad_cos",
    [
        ("cnn_small", {"widths": (8, 16)}, {"remat": True}, 1e-6, 1e-5, 1 - 1e-6),
        (
            "resnet18",
            {"width": 0.125, "stage_sizes": (1, 1)},
            {"remat": True},
            1e-6,
            1e-5,
            1 - 1e-6,
        ),
        # bf16 keeps 8 mantissa bits (2^-8 = 0.4% per rounding); through batch norm's
        # variance many roundings add up, so the criterion is the gradient's direction: a
        # cosine >= 0.99 (within 8 degrees) keeps an SGD step a descent step. The norm bound
        # 0.25 only rules out a gross error (an f32 run with bf16 inputs would pass both).
        ("cnn_small", {"widths": (8, 16)}, {"dtype": "bfloat16"}, 1e-3, 0.25, 0.99),
    ],
)
def test_remat_and_bf16_match_float32(
    batch_config, name, kwargs, switch, loss_rtol, grad_rel_err, grad_cos
):
    x = jax.numpy.asarray(batch_config[1]["image"][:16], jax.numpy.float32) / 255.0
    ref_text, text = [], []
    ref_loss, ref_grads = _loss_and_grads(models.get_model(name, **kwargs), x, ref_text)
    loss, grads = _loss_and_grads(models.get_model(name, **kwargs, **switch), x, text)
    if "remat" in switch:  # recomputation: the gradient program re-runs forward ops
        assert len(text[0].splitlines()) > len(ref_text[0].splitlines())
    else:  # bf16 compute: bf16 convolutions appear, and none without the switch
        assert "bf16" in text[0] and "bf16" not in ref_text[0]
    np.testing.assert_allclose(loss, ref_loss, rtol=loss_rtol)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True):
        assert g.dtype == np.float32  # params (and so grads, optimizer state) stay float32
        g, r = np.ravel(g), np.ravel(r)
        assert np.linalg.norm(g - r) <= grad_rel_err * np.linalg.norm(r)
        assert g @ r >= grad_cos * np.linalg.norm(g) * np.linalg.norm(r)
    if "dtype" in switch:  # bf16 really changed the compute
        assert loss != ref_loss


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("mesh.fsdp", 3, "mesh.fsdp=3 must be a positive divisor of the 8 devices"),
        ("precision", "float16", "precision='float16': use one of float32, bfloat16"),
        ("remat", 1, "remat=1 must be True or False"),
    ],
)
def test_bad_scaling_keys_refused_before_compiling(key, value, message):
    from jaxssl.config import ConfigError, base_config
    from jaxssl.train.checks import validate_training

    config = base_config()
    node, leaf = config, key
    if "." in key:
        head, leaf = key.split(".")
        node = config[head]
    with node.ignore_type():
        node[leaf] = value
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate_training(config)
