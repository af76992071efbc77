"""A model function exported for deployment: ONNX (jax2onnx) and serialized StableHLO
(jax.export), each with a dynamic batch dimension.

fn(weights, *inputs) -> array is the function to export: weights a pytree of arrays, inputs as
a dataset gives them (uint8 images NHWC, or int32 tokens + attention mask). ONNX bakes the
weights into the graph (initializers); StableHLO keeps them an argument, saved beside as
safetensors ({"a/b/c": array}), so a runtime with only jax loads both:
    exp = jax.export.deserialize(open(PATH, "rb").read())
    out = exp.call(safetensors.numpy.load_file(WEIGHTS), *inputs)

jax2onnx 0.17 needs two workarounds, applied here and in the models: it cannot convert
jax.image.resize with a symbolic batch dimension (its plugin casts every output dimension to
int), so the eval-view resize is written as two matrix products with the same weights
(`resize_matrix`); and it writes wrong intermediate shapes (value_info) around NHWC
convolutions, which onnxruntime's shape inference rejects, so value_info is dropped.
(Its max-pool drops explicit padding: jaxssl's ResNet pads with -inf and pools VALID.)
"""

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from jaxssl.augment import views
from jaxssl.config import ConfigError

BATCH = "batch"  # the symbolic batch dimension's name in both formats
# --no-deps: jax2onnx pins orbax-checkpoint < 0.11.37 without importing it (pyproject.toml).
INSTALL = "pip install 'jaxssl[export]' && pip install --no-deps 'jax2onnx>=0.17'"


def flatten(tree: Any) -> dict[str, np.ndarray]:
    """{"a/b/c": numpy array} of a nested dict of arrays (safetensors' flat names)."""
    flat = traverse_util.flatten_dict(jax.device_get(tree))
    return {"/".join(k): np.asarray(v) for k, v in flat.items()}


def unflatten(flat: dict[str, Any]) -> Any:
    """Inverse of flatten."""
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


@functools.lru_cache(maxsize=16)
def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in] weights of jax.image.resize(..., "linear") along one axis: the
    resize is linear and separable, so resizing the identity gives exactly its weights."""
    with jax.ensure_compile_time_eval():  # a constant, also when called while tracing
        eye = jnp.eye(size_in, dtype=jnp.float32)
        return np.asarray(jax.image.resize(eye, (size_out, size_in), "linear"))


def eval_view(images: jax.Array, cfg: ml_collections.ConfigDict) -> jax.Array:
    """views.eval_view (uint8 -> resized, clipped, normalised float32) as matrix products."""
    _, h, w, _ = images.shape
    x = images.astype(jnp.float32) / 255.0
    x = jnp.einsum("oh,bhwc->bowc", resize_matrix(h, cfg.image_size), x)
    x = jnp.einsum("ow,bhwc->bhoc", resize_matrix(w, cfg.image_size), x)
    return views.normalize(jnp.clip(x, 0.0, 1.0), cfg.mean, cfg.std)


def specs(example: dict[str, np.ndarray], names: Sequence[str]) -> list[jax.ShapeDtypeStruct]:
    """Input specs with a symbolic batch dimension, shaped like example[name][0]."""
    (batch,) = jax.export.symbolic_shape(BATCH)  # one symbol (one scope) for every input
    out = []
    for name in names:
        x = np.asarray(example[name])
        out.append(jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype))
    return out


def to_stablehlo(
    fn: Callable[..., jax.Array],
    weights: Any,
    input_specs: Sequence[jax.ShapeDtypeStruct],
    path: str,
    weights_path: str,
) -> None:
    """Writes jax.export's serialize() of jit(fn) to path and the weights beside it."""
    from jaxssl.interop import tensors

    flat = flatten(weights)
    weight_specs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in flat.items()}
    exported = jax.export.export(jax.jit(lambda w, *xs: fn(unflatten(w), *xs)))(
        weight_specs, *input_specs
    )
    with open(path, "wb") as f:
        f.write(exported.serialize())
    tensors.write(weights_path, flat)


def to_onnx(
    fn: Callable[..., jax.Array],
    weights: Any,
    input_specs: Sequence[jax.ShapeDtypeStruct],
    path: str,
    input_names: Sequence[str],
    output_name: str,
    opset: int = 23,
) -> None:
    """Writes fn with the weights baked in as an ONNX model (jax2onnx), then checks it."""
    try:
        import jax2onnx
        import onnx
    except ImportError:
        raise ConfigError(f"export.format=onnx needs jax2onnx and onnx: {INSTALL}") from None
    weights = jax.device_get(weights)
    model = jax2onnx.to_onnx(
        lambda *xs: fn(weights, *xs),
        list(input_specs),
        model_name=os.path.splitext(os.path.basename(path))[0],
        opset=opset,
        input_names=list(input_names),
        output_names=[output_name],
    )
    del model.graph.value_info[:]  # wrong NHWC shapes from jax2onnx 0.17; ORT infers its own
    onnx.checker.check_model(model)
    onnx.save(model, path)
