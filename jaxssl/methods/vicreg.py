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
from jaxssl.methods.barlow_twins import BarlowTwins

_DEFAULTS = {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0, "gamma": 1.0}


class VICReg(BarlowTwins):
    """BarlowTwins' two-view network with the VICReg objective."""

    def check_method(self, m) -> None:
        for key, default in _DEFAULTS.items():
            if not m.get(key, default) >= 0:
                raise ValueError(f"method.{key}={m[key]} must be >= 0 (the paper: {default})")

    def objective(self, z1: jax.Array, z2: jax.Array) -> tuple[jax.Array, dict]:
        m = self.config.method
        return losses.vicreg(z1, z2, **{k: m.get(k, d) for k, d in _DEFAULTS.items()})
