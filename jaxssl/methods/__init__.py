"""Method registry: a method is one file here plus one line below."""

import ml_collections

from jaxssl.methods.base import Method
from jaxssl.methods.simclr import SimCLR

METHODS: dict[str, type[Method]] = {
    "simclr": SimCLR,
}


def get_method(config: ml_collections.ConfigDict) -> Method:
    """Instantiates config.method.name with the full config."""
    name = config.method.name
    if name not in METHODS:
        raise ValueError(f"method.name={name!r} is unknown; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name](config)
