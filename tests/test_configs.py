"""Every shipped config loads and names registered parts; embedded ones fully validate."""

import jax
import pytest

from jaxssl import methods, models
from jaxssl.augment import views
from jaxssl.jobs import JOBS
from jaxssl.validate import validate

from .helpers import ROOT, load_config

CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py"))
EMBEDDED = ("digits", "pydoc")


@pytest.mark.parametrize("name", CONFIGS)
def test_config_names_registered_parts(name):
    config = load_config(name)
    assert config.get("job", "pretrain") in JOBS
    if "model" in config:
        assert config.model.name in models.model_names()
    if config.get("job", "pretrain") == "pretrain":
        assert config.method.name in methods.METHODS
    if "augment" in config:
        views.check_config(config.augment, len(config.augment.mean))
    assert config.batch_size > 0 and config.total_steps >= 0


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in CONFIGS
        if load_config(n).dataset.name in EMBEDDED
        and load_config(n).get("job", "pretrain") == "pretrain"
    ],
)
def test_embedded_configs_validate(name, tmp_path):
    config = load_config(name)
    config.dataset.data_dir = str(tmp_path)
    n = jax.device_count()  # reference-shaped configs (batch 12) need a multiple of 8 here
    config.batch_size = -(-config.batch_size // n) * n
    config.eval.batch_size = -(-config.eval.batch_size // n) * n
    validate(config)
