"""Encoders and heads, looked up by name from a config string."""

from collections.abc import Callable

import flax.linen as nn

from jaxssl.models.cnn import CNNEncoder
from jaxssl.models.heads import LinearHead, MLPHead
from jaxssl.models.resnet import ResNet, ResNet18, ResNet34, ResNet50
from jaxssl.models.transformer import MODEL_FACTORIES
from jaxssl.models.vit import ViT
from jaxssl.models.vit import preset as vit_preset

ModelFactory = Callable[..., nn.Module]
MODELS: dict[str, ModelFactory] = {}


def register_model(
    name: str, factory: ModelFactory | None = None
) -> ModelFactory | Callable[[ModelFactory], ModelFactory]:
    """Register `factory` under `name`; without `factory`, return a decorator that does so."""

    def add(fn: ModelFactory) -> ModelFactory:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = fn
        return fn

    return add if factory is None else add(factory)


def model_names() -> tuple[str, ...]:
    """Sorted names accepted by get_model (for config validation)."""
    return tuple(sorted(MODELS))


def get_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as `name`, passing kwargs (stem, width, dtype ...) through."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as e:  # an unknown kwarg: say which model rejected it
        raise TypeError(f"model {name!r} rejected kwargs {sorted(kwargs)}: {e}") from e


register_model("cnn_small", CNNEncoder)
register_model("resnet18", ResNet18)
register_model("resnet34", ResNet34)
register_model("resnet50", ResNet50)
register_model("vit", ViT)
for _vit in ("vit_tiny", "vit_small", "vit_base"):
    register_model(_vit, vit_preset(_vit))
for _name, _factory in MODEL_FACTORIES.items():  # transformer_tiny / _small / _base
    register_model(_name, _factory)

__all__ = [
    "MODELS",
    "CNNEncoder",
    "LinearHead",
    "MLPHead",
    "ResNet",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "get_model",
    "model_names",
    "register_model",
]
