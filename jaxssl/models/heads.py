"""Projection/predictor MLP heads (SimCLR, MoCo, BYOL) and a linear probe head."""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MLPHead(nn.Module):
    """Dense -> (BN) -> ReLU per hidden layer, then Dense (-> BN if last_bn)."""

    hidden_dims: Sequence[int]
    out_dim: int
    use_bn: bool = True
    last_bn: bool = False  # SimCLR v2 / MoCo v3 projectors end in BN; BYOL's predictor does not
    dtype: Any = jnp.float32  # computation dtype; params stay float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        """Map [B,D_in] to [B,out_dim] (float32)."""
        x = x.astype(self.dtype)
        for i, dim in enumerate(self.hidden_dims):
            # The dense bias is redundant when BN's beta follows.
            x = nn.Dense(dim, use_bias=not self.use_bn, dtype=self.dtype, name=f"dense{i}")(x)
            if self.use_bn:
                x = nn.BatchNorm(
                    use_running_average=not train,
                    momentum=0.9,
                    epsilon=1e-5,
                    dtype=self.dtype,
                    name=f"bn{i}",
                )(x)
            x = nn.relu(x)
        x = nn.Dense(self.out_dim, use_bias=not self.last_bn, dtype=self.dtype, name="out")(x)
        if self.last_bn:
            # No beta on the output BN, as in SimCLR's projection head (center=False).
            x = nn.BatchNorm(
                use_running_average=not train,
                momentum=0.9,
                epsilon=1e-5,
                use_bias=False,
                dtype=self.dtype,
                name="out_bn",
            )(x)
        return x.astype(jnp.float32)


class LinearHead(nn.Module):
    """A single Dense layer to class logits, for linear probes and fine-tuning."""

    num_classes: int
    zero_init: bool = True  # zero kernel: the probe starts at uniform predictions
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        """Map [B,D] to float32 logits [B,num_classes]; `train` is unused but keeps one API."""
        del train
        init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        x = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=init, name="fc")(x)
        return x.astype(jnp.float32)
