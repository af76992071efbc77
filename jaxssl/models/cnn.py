"""A small convolutional encoder for tiny images (8x8 digits, 32x32 CIFAR) and fast tests."""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxssl.models import cpu_conv

# He-normal (fan_out) suits conv + ReLU stacks; lecun (flax default) starts them too small.
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class CNNEncoder(nn.Module):
    """Stages of conv3x3-BN-ReLU; every stage after the first halves the resolution."""

    widths: Sequence[int] = (32, 64, 128)
    dtype: Any = jnp.float32  # computation dtype; params stay float32
    remat: bool = False  # recompute each norm in the backward pass (saves little: see below)

    @property
    def features_dim(self) -> int:
        """Width of the pooled representation."""
        return self.widths[-1]

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Encode images [B,H,W,C] into (pooled [B,D], named features)."""
        # No axis_name: under jit over a sharded global batch the stats are already global.
        # Layer-level remat keeps the param names (conv0, bn0 ...) so checkpoints stay valid,
        # but only batch norm is recomputed (a conv's backward needs just its saved input):
        # it saves one activation per stage. ResNet / ViT / Transformer remat whole blocks.
        conv_cls = nn.remat(nn.Conv) if self.remat else nn.Conv
        norm_cls = nn.remat(nn.BatchNorm) if self.remat else nn.BatchNorm
        norm = partial(
            norm_cls,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
        )
        features = {}
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths):
            stride = 1 if i == 0 else 2
            # Bias is redundant before BN (its beta does the same job).
            x = conv_cls(
                width,
                (3, 3),
                stride,
                padding=1,
                use_bias=False,
                dtype=self.dtype,
                kernel_init=CONV_INIT,
                conv_general_dilated=cpu_conv.conv_general_dilated(train),
                name=f"conv{i}",
            )(x)
            x = nn.relu(norm(name=f"bn{i}")(x))
            features[f"stage{i + 1}"] = x
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        features["feature_map"] = x
        features["pooled"] = pooled
        return pooled, features
