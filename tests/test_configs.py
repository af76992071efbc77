"""Every shipped config loads and names registered parts; embedded ones fully validate."""

import jax
import jax.numpy as jnp
import ml_collections
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
    # ml_collections' flags cannot set a key whose value is a bare None (its type is unknown):
    # a key left unset must be a typed placeholder, so --config.KEY=VALUE works on it.
    assert not list(_bare_nones(config)), "use ml_collections.config_dict.placeholder(TYPE)"


def _bare_nones(config: ml_collections.ConfigDict, prefix: str = ""):
    for key in config.keys():
        value = config._fields[key]  # a placeholder is a typed FieldReference here, not None
        if isinstance(value, ml_collections.ConfigDict):
            yield from _bare_nones(value, f"{prefix}{key}.")
        elif value is None:
            yield prefix + key


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


def _abstract_batch(config, n: int = 8) -> dict:
    """Shapes a dataset of this config would give (no data read: paper datasets are absent)."""
    if config.dataset.get("seq_len"):
        window = jax.ShapeDtypeStruct((n, config.dataset.seq_len), jnp.int32)
        return {"tokens": window, "attention_mask": window}
    size = config.dataset.get("image_size") or config.augment.image_size
    channels = len(config.augment.mean)
    return {"image": jax.ShapeDtypeStruct((n, size, size, channels), jnp.uint8)}


def _shallow(config):
    """Stacks of identical blocks cut to 2 (ResNet stages to 1 block each): the widths, heads,
    patch and image sizes stay the paper's, and tracing ViT-H's 32 blocks (8 s) checks no
    more than tracing 2. Per-layer settings (layer decay) follow the built depth."""
    m = config.model
    if m.name.startswith(("vit", "transformer")):
        m.depth = min(m.get("depth", 2), 2)
    elif m.name.startswith("resnet"):
        m.stage_sizes = (1, 1, 1, 1)
    for key in ("decoder_depth", "pred_depth"):
        if key in config.get("method", {}):
            config.method[key] = min(config.method[key], 2)
    return config


@pytest.mark.parametrize(
    "name",
    [n for n in CONFIGS if load_config(n).get("job", "pretrain") in ("pretrain", "finetune")],
)
def test_every_config_traces_its_init_and_train_step(name, monkeypatch):
    """Paper configs included: the model, method, augmentation and optimizer fit together.

    Traced on abstract shapes only (jax.eval_shape / make_jaxpr): nothing is compiled or
    allocated; depths are cut to 2 (_shallow), so a ViT-H or ResNet-50 config costs a second.
    The batch is 8 examples of the config's own image size / sequence length; the online
    probe (which needs the dataset's class count) is left out by giving no labels.

    Every method key read with a code default must be one the loaded config has (a method
    OPTION the loader filled in): otherwise `--config.method.KEY=...` is refused as unknown.
    """
    from jaxssl.finetune.method import FineTune
    from jaxssl.finetune.model import FineTuneModel
    from jaxssl.finetune.partition import make_optimizer, param_labels
    from jaxssl.train import optim, precision
    from jaxssl.train import step as step_lib
    from jaxssl.train.state import TrainState

    config = precision.with_precision(_shallow(load_config(name)))
    read_with_default, block = set(), config.get("method")
    get = ml_collections.ConfigDict.get

    def recording_get(self, key, default=None):
        if self is block:
            read_with_default.add(key)
        return get(self, key, default)

    monkeypatch.setattr(ml_collections.ConfigDict, "get", recording_get)
    batch = _abstract_batch(config)
    rng = jax.random.PRNGKey(0)
    if config.get("job", "pretrain") == "finetune":
        model = FineTuneModel(config, 10)
        params, model_state = jax.eval_shape(model.init, rng, batch)
        labels, mults = param_labels(params, config.finetune)
        tx = make_optimizer(config.optimizer, config.batch_size, config.total_steps, labels, mults)
        method = FineTune(model, labels, model_state)
        trainable = method.mask
        batch["label"] = jax.ShapeDtypeStruct((8,), jnp.int32)
    else:
        method = methods.get_method(config)
        params, model_state = jax.eval_shape(method.init, rng, batch)
        tx = optim.make_optimizer(config.optimizer, config.batch_size, config.total_steps)
        trainable = None
    assert "encoder" in params
    state = jax.eval_shape(
        lambda p, m: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p), m, rng),
        params,
        model_state,
    )
    schedule = optim.make_schedule(config.optimizer, config.batch_size, config.total_steps)
    step = step_lib.make_train_step(method, tx, schedule, trainable=trainable)
    new_state, metrics = jax.eval_shape(step, state, batch)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert metrics["loss"].shape == () and "grad_norm" in metrics
    assert read_with_default <= set(block or {})
