"""cpu_conv: a training convolution's input kept in its own buffer on the CPU, nothing else."""

import jax
import jax.numpy as jnp
import numpy as np
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


def test_training_conv_equals_lax_bit_for_bit_with_its_gradients():
    x, w = _arrays()
    plain = jax.jit(jax.value_and_grad(_loss(jax.lax.conv_general_dilated), argnums=(0, 1)))
    stored = jax.jit(jax.value_and_grad(_loss(cpu_conv.conv_general_dilated(True)), argnums=(0, 1)))
    for a, b in zip(jax.tree.leaves(plain(x, w)), jax.tree.leaves(stored(x, w)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_loop_is_in_the_cpu_step_only():
    x, w = _arrays()
    weight_grad = jax.jit(jax.grad(_loss(cpu_conv.conv_general_dilated(True)), argnums=1))
    assert " while(" in weight_grad.lower(x, w).compile().as_text()  # XLA kept it
    for platform, loops in (("cpu", 1), ("cuda", 0), ("tpu", 0)):
        module = export.export(weight_grad, platforms=[platform])(x, w).mlir_module()
        assert module.count("stablehlo.while") == loops, platform
    assert cpu_conv.conv_general_dilated(False) is None  # evaluation and export: lax's own


def test_encoder_training_step_unchanged_and_equal_on_1_and_8_devices(monkeypatch):
    """The CNN encoder's training loss and gradients: bit-identical to the same encoder on lax's
    convolutions, and the same on 8 devices with the batch sharded."""
    model = CNNEncoder(widths=(4, 8))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((16, 8, 8, 1)), jnp.float32)
    variables = model.init(jax.random.key(0), x, train=False)

    def loss(params, x):
        (pooled, _), _ = model.apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
        )
        return jnp.sum(pooled**2)

    stored = jax.jit(jax.value_and_grad(loss))(variables["params"], x)
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    eight = jax.jit(jax.value_and_grad(loss))(variables["params"], jax.device_put(x, sharding))
    monkeypatch.setattr(cpu_conv, "conv_general_dilated", lambda train: None)
    plain = jax.jit(jax.value_and_grad(loss))(variables["params"], x)
    for a, b, c in zip(*map(jax.tree.leaves, (stored, plain, eight)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=2e-4, atol=1e-5)
