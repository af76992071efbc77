"""Mixed precision and rematerialisation switches, plumbed into the encoder's kwargs.

`precision` and `remat` are top-level keys so one CLI flag changes any model; they reach the
encoder as model.dtype / model.remat (build_encoder passes every model.* key as a kwarg).
Params and optimizer state stay float32 (flax param_dtype); only the compute is cast.
"""

import ml_collections

PRECISIONS = ("float32", "bfloat16")


def with_precision(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of config whose model block carries dtype/remat when they differ from default."""
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked copy; the caller's is kept
    precision = config.get("precision", "float32")
    if precision != "float32" and "dtype" not in config.model:
        config.model.dtype = precision
    if config.get("remat", False) and "remat" not in config.model:
        config.model.remat = True
    return config
