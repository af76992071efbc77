"""VICReg (Bardes, Ponce & LeCun 2022): variance-invariance-covariance regularisation.

The Barlow Twins set-up (barlow_twins.py: two views, encoder -> expander MLP, one batch-norm
batch per view) with the VICReg objective (losses.vicreg): invariance = MSE between the two
embeddings (method.sim_weight, 25), variance = hinge on each dimension's std at
method.gamma (1) with eps 1e-4 (method.var_weight, 25), covariance = squared off-diagonal
covariance / D (method.cov_weight, 1). Variances and covariances are statistics of the
global batch: under jit over the sharded batch they span every device.
"""

import jax

from jaxssl import losses
from jaxssl.methods import base
from jaxssl.methods.barlow_twins import BarlowTwins

_WEIGHTS = {  # the objective's keys, each >= 0
    "sim_weight": base.Option(25.0, "weight of the invariance (MSE) term"),
    "var_weight": base.Option(25.0, "weight of the variance hinge"),
    "cov_weight": base.Option(1.0, "weight of the covariance term"),
    "gamma": base.Option(1.0, "target standard deviation of each embedding dimension"),
}


class VICReg(BarlowTwins):
    """BarlowTwins' two-view network with the VICReg objective."""

    OPTIONS = {
        **{k: v for k, v in BarlowTwins.OPTIONS.items() if k not in ("lambd", "scale_loss")},
        **_WEIGHTS,
    }

    def check_method(self, m) -> None:
        for key, option in _WEIGHTS.items():
            if not self.option(self.config, key) >= 0:
                value = self.option(self.config, key)
                raise ValueError(f"method.{key}={value} must be >= 0 (the paper: {option.default})")

    def objective(self, z1: jax.Array, z2: jax.Array) -> tuple[jax.Array, dict]:
        return losses.vicreg(z1, z2, **{k: self.option(self.config, k) for k in _WEIGHTS})
