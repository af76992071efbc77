"""ResNet v1.5 encoders (He et al. 2016) with a CIFAR or ImageNet stem and a width multiplier."""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxssl.models import cpu_conv

# He-normal (fan_out), the usual ResNet initialisation for conv + ReLU.
CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
STEMS = ("cifar", "imagenet")
EXPANSION = {"basic": 1, "bottleneck": 4}


def _norm(train: bool, dtype: Any, zero_init: bool = False, name: str | None = None) -> nn.Module:
    """BatchNorm over the (global) batch; running averages in the "batch_stats" collection."""
    scale_init = nn.initializers.zeros if zero_init else nn.initializers.ones
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=dtype,
        scale_init=scale_init,
        name=name,
    )


class ResidualBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1-3x3-1x1, stride on the 3x3) residual block."""

    filters: int
    strides: int = 1
    block: str = "basic"
    zero_init_residual: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        """Apply the block to [B,H,W,C]."""
        conv = partial(
            nn.Conv,
            use_bias=False,
            dtype=self.dtype,
            kernel_init=CONV_INIT,
            conv_general_dilated=cpu_conv.conv_general_dilated(train),
        )
        out_filters = self.filters * EXPANSION[self.block]
        if self.block == "basic":
            y = conv(self.filters, (3, 3), self.strides, padding=1, name="conv1")(x)
            y = nn.relu(_norm(train, self.dtype, name="bn1")(y))
            y = conv(out_filters, (3, 3), padding=1, name="conv2")(y)
        else:
            y = conv(self.filters, (1, 1), name="conv1")(x)
            y = nn.relu(_norm(train, self.dtype, name="bn1")(y))
            y = conv(self.filters, (3, 3), self.strides, padding=1, name="conv2")(y)
            y = nn.relu(_norm(train, self.dtype, name="bn2")(y))
            y = conv(out_filters, (1, 1), name="conv3")(y)
        # Zero gamma makes each block start as the identity (Goyal et al. 2017).
        last = "bn2" if self.block == "basic" else "bn3"
        y = _norm(train, self.dtype, zero_init=self.zero_init_residual, name=last)(y)
        shortcut = x
        if x.shape[-1] != out_filters or self.strides != 1:
            shortcut = conv(out_filters, (1, 1), self.strides, name="proj_conv")(x)
            shortcut = _norm(train, self.dtype, name="proj_bn")(shortcut)
        return nn.relu(y + shortcut)


class ResNet(nn.Module):
    """ResNet encoder returning the global-average-pooled representation (no classifier)."""

    stage_sizes: Sequence[int]
    block: str = "basic"  # "basic" (ResNet-18/34) or "bottleneck" (ResNet-50+)
    stem: str = "cifar"  # "cifar": 3x3/1, no max-pool; "imagenet": 7x7/2 + 3x3/2 max-pool
    width: float = 1.0  # channel multiplier (SimCLR's 2x/4x, or <1 for fast tests)
    zero_init_residual: bool = True
    dtype: Any = jnp.float32  # computation dtype; params stay float32
    remat: bool = False  # recompute each residual block in the backward pass (same param names)

    def __post_init__(self) -> None:
        # Fail at construction, before anything is traced or compiled.
        if self.stem not in STEMS:
            raise ValueError(f"unknown stem {self.stem!r}; valid stems: {', '.join(STEMS)}")
        if self.block not in EXPANSION:
            raise ValueError(f"unknown block {self.block!r}; valid: {', '.join(EXPANSION)}")
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        super().__post_init__()

    def stage_filters(self, stage: int) -> int:
        """Inner channel count of a stage (before the bottleneck expansion)."""
        return max(1, round(64 * self.width * 2**stage))

    @property
    def features_dim(self) -> int:
        """Width of the pooled representation."""
        return self.stage_filters(len(self.stage_sizes) - 1) * EXPANSION[self.block]

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        """Encode images [B,H,W,C] into (pooled [B,D], named features)."""
        x = x.astype(self.dtype)
        stem_filters = self.stage_filters(0)
        if self.stem == "cifar":
            x = nn.Conv(
                stem_filters,
                (3, 3),
                1,
                padding=1,
                use_bias=False,
                dtype=self.dtype,
                kernel_init=CONV_INIT,
                conv_general_dilated=cpu_conv.conv_general_dilated(train),
                name="stem_conv",
            )(x)
            x = nn.relu(_norm(train, self.dtype, name="stem_bn")(x))
        else:
            x = nn.Conv(
                stem_filters,
                (7, 7),
                2,
                padding=3,
                use_bias=False,
                dtype=self.dtype,
                kernel_init=CONV_INIT,
                conv_general_dilated=cpu_conv.conv_general_dilated(train),
                name="stem_conv",
            )(x)
            x = nn.relu(_norm(train, self.dtype, name="stem_bn")(x))
            # The same max-pool as padding=((1, 1), (1, 1)), written as -inf padding + VALID
            # (keyword window_shape): jax2onnx 0.17 drops explicit max-pool padding.
            x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
            x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding="VALID")
        features = {"stem": x}
        # static_argnums=(2,): `train` (arg 2 counting self) is a Python bool, not traced.
        block_cls = nn.remat(ResidualBlock, static_argnums=(2,)) if self.remat else ResidualBlock
        for i, num_blocks in enumerate(self.stage_sizes):
            for j in range(num_blocks):
                x = block_cls(
                    self.stage_filters(i),
                    strides=2 if i > 0 and j == 0 else 1,
                    block=self.block,
                    zero_init_residual=self.zero_init_residual,
                    dtype=self.dtype,
                    name=f"stage{i + 1}_block{j}",
                )(x, train)
            features[f"stage{i + 1}"] = x
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        features["feature_map"] = x
        features["pooled"] = pooled
        return pooled, features


ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block="basic")
ResNet34 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block="basic")
ResNet50 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck")
