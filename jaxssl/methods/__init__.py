"""Method registry: a method is one file here plus one line below."""

import copy
from typing import Any

import ml_collections

from jaxssl.methods.autoencoder import Autoencoder
from jaxssl.methods.barlow_twins import BarlowTwins
from jaxssl.methods.base import Method
from jaxssl.methods.byol import BYOL
from jaxssl.methods.causal_lm import CausalLM
from jaxssl.methods.dino import DINO
from jaxssl.methods.ijepa import IJEPA
from jaxssl.methods.mae import MAE
from jaxssl.methods.mlm import MLM
from jaxssl.methods.moco import MoCo
from jaxssl.methods.simclr import SimCLR
from jaxssl.methods.simcse import SimCSE
from jaxssl.methods.vae import VAE
from jaxssl.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {
    "simclr": SimCLR,
    "mlm": MLM,
    "causal_lm": CausalLM,
    "moco": MoCo,
    "byol": BYOL,
    "mae": MAE,
    "autoencoder": Autoencoder,
    "vae": VAE,
    "simcse": SimCSE,
    "barlow_twins": BarlowTwins,
    "vicreg": VICReg,
    "dino": DINO,
    "ijepa": IJEPA,
}


def get_method(config: ml_collections.ConfigDict) -> Method:
    """Instantiates config.method.name with the full config."""
    name = config.method.name
    if name not in METHODS:
        raise ValueError(f"method.name={name!r} is unknown; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name](config)


def fill_options(config: ml_collections.ConfigDict) -> None:
    """Adds the method keys a pre-training config leaves out (the method's OPTIONS) with their
    defaults, so the command line can set them and `jaxssl keys` lists them. Other jobs (their
    method block is unused) and an unknown method: nothing."""
    method = config.get("method")
    if config.get("job", "pretrain") != "pretrain" or not isinstance(
        method, ml_collections.ConfigDict
    ):
        return
    cls = METHODS.get(method.get("name"))
    for key, option in (cls.OPTIONS if cls else {}).items():
        if key not in method:
            method[key] = copy.deepcopy(option.default)


def option_defaults(name: str) -> dict[str, Any]:
    """{key: default} of the options of method `name` ({} for an unknown one)."""
    cls = METHODS.get(name)
    return {k: copy.deepcopy(o.default) for k, o in (cls.OPTIONS if cls else {}).items()}
