"""Method registry: a method is one file here plus one line below."""

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
