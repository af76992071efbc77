"""cpu_conv: a training convolution's input kept in its own buffer on the CPU, and stride-2
input gradients by phases; the same values as lax's convolutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from jaxssl.models import CNNEncoder, cpu_conv

DN = ("NHWC", "HWIO", "NHWC")


def _loss(conv):
    def loss(x, w):
        y = conv(jax.nn.relu(x), w, (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN)
        return jnp.sum(jnp.tanh(y) ** 2)

    return loss


def _arrays():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((8, 9, 9, 4)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 4, 5)), jnp.float32)
    return x, w


def _assert_same_values(plain, phased):
    """Loss and weight gradient bit for bit (the same ops); the input gradient, summed by phases
    in another order, to float rounding."""
    (loss, (dx, dw)), (loss_b, (dx_b, dw_b)) = plain, phased
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(loss_b))
    np.testing.assert_array_equal(np.asarray(dw), np.asarray(dw_b))
    np.testing.assert_allclose(np.asarray(dx_b), np.asarray(dx), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(dx)).max() > 0


def test_training_conv_equals_lax_with_its_gradients():
    x, w = _arrays()
    plain = jax.jit(jax.value_and_grad(_loss(jax.lax.conv_general_dilated), argnums=(0, 1)))
    stored = jax.jit(jax.value_and_grad(_loss(cpu_conv.conv_general_dilated(True)), argnums=(0, 1)))
    _assert_same_values(plain(x, w), stored(x, w))
    assert "lhs_dilate" not in stored.lower(x, w).compile().as_text()  # no zeros multiplied
    assert "lhs_dilate" in plain.lower(x, w).compile().as_text()


@pytest.mark.parametrize(
    "size, kernel, strides, padding",
    [
        ((8, 8), (3, 3), (2, 2), "SAME"),  # pads (0, 1): the first phase starts a row later
        ((7, 6), (3, 2), (2, 1), ((0, 2), (1, 0))),  # odd size, stride 1 in one dimension
        ((8, 9), (1, 1), (2, 2), "VALID"),  # ResNet's projection: odd rows and columns get 0
        ((6, 6), (2, 2), (2, 2), ((0, 0), (0, 0))),  # windows that do not overlap
    ],
)
def test_input_grad_by_phases_matches_lax(size, kernel, strides, padding):
    rng = np.random.default_rng(sum(size + kernel))
    x = jnp.asarray(rng.standard_normal((2, *size, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((*kernel, 3, 4)), jnp.float32)

    def loss(conv):
        return lambda x, w: jnp.sum(
            jnp.sin(conv(x, w, strides, padding, dimension_numbers=DN)) * jnp.arange(4.0)
        )

    plain = jax.jit(jax.value_and_grad(loss(jax.lax.conv_general_dilated), argnums=(0, 1)))
    phased = jax.jit(jax.value_and_grad(loss(cpu_conv.conv_general_dilated(True)), argnums=(0, 1)))
    _assert_same_values(plain(x, w), phased(x, w))
    assert "lhs_dilate" not in phased.lower(x, w).compile().as_text()


def test_the_loop_and_the_phases_are_in_the_cpu_step_only():
    x, w = _arrays()
    weight_grad = jax.jit(jax.grad(_loss(cpu_conv.conv_general_dilated(True)), argnums=1))
    assert " while(" in weight_grad.lower(x, w).compile().as_text()  # XLA kept it
    input_grad = jax.jit(jax.grad(_loss(cpu_conv.conv_general_dilated(True))))
    for platform, loops in (("cpu", 1), ("cuda", 0), ("tpu", 0)):
        module = export.export(weight_grad, platforms=[platform])(x, w).mlir_module()
        assert module.count("stablehlo.while") == loops, platform
        module = export.export(input_grad, platforms=[platform])(x, w).mlir_module()
        assert ("lhs_dilate" in module) == (platform != "cpu"), platform  # lax's gradient there
    assert cpu_conv.conv_general_dilated(False) is None  # evaluation and export: lax's own


def test_encoder_training_step_equal_to_lax_and_on_1_and_8_devices(monkeypatch):
    """The CNN encoder's training loss: bit-identical to the same encoder on lax's convolutions,
    its gradients equal to float rounding (input gradients by phases), and the same on 8 devices
    with the batch sharded."""
    model = CNNEncoder(widths=(4, 8))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((16, 8, 8, 1)), jnp.float32)
    variables = model.init(jax.random.key(0), x, train=False)

    def loss(params, x):
        (pooled, _), _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.sum(pooled**2)

    stored = jax.jit(jax.value_and_grad(loss))(variables["params"], x)
    hlo = jax.jit(jax.grad(loss)).lower(variables["params"], x).compile().as_text()
    assert "lhs_dilate" not in hlo  # conv1's input gradient by phases, through flax's nn.Conv
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    eight = jax.jit(jax.value_and_grad(loss))(variables["params"], jax.device_put(x, sharding))
    monkeypatch.setattr(cpu_conv, "conv_general_dilated", lambda train: None)
    plain = jax.jit(jax.value_and_grad(loss))(variables["params"], x)
    np.testing.assert_array_equal(np.asarray(stored[0]), np.asarray(plain[0]))
    for a, b, c in zip(*map(jax.tree.leaves, (stored, plain, eight)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=2e-4, atol=1e-5)
