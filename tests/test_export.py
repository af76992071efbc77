"""Deployable models out: the export job's ONNX and StableHLO artifacts equal the JAX model on
real digits (dynamic batch; StableHLO run in a process without jaxssl), and jaxssl encoders
saved in the public formats load in transformers / torch with equal outputs.

ONNX parts need jax2onnx, which the README's test command installs with --no-deps (it pins
orbax-checkpoint < 0.11.37 without importing it); without it they skip."""

import importlib.util
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxssl import interop, jobs, validate
from jaxssl.augment import views
from jaxssl.config import ConfigError
from jaxssl.data import sources
from jaxssl.finetune import export as export_job
from jaxssl.interop import deploy, save
from jaxssl.models import get_model

from .helpers import load_config
from .text_helpers import corpus_file

ATOL = 1e-4
ONNX = all(importlib.util.find_spec(m) for m in ("jax2onnx", "onnx", "onnxruntime"))
FORMATS = "onnx,stablehlo" if ONNX else "stablehlo"


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """(config, workdir) of a 3-step LoRA fine-tune of a small CNN on digits, and its
    predict job's logits of the whole test split."""
    root = tmp_path_factory.mktemp("export")
    c = load_config("finetune_digits")
    c.dataset.data_dir = str(root / "tfds")
    c.batch_size, c.total_steps, c.log_every, c.checkpoint_every = 32, 3, 1, 3
    c.model.widths = (8, 16)
    c.augment.image_size = 12  # 8x8 digits resized: the exported graph resizes too
    c.finetune.mode = "lora"
    c.optimizer.learning_rate = 0.05
    c.optimizer.warmup_steps = 1
    c.eval.batch_size = 128
    validate.validate(c)
    jobs.run(c, str(root / "ft"))
    p = load_config("predict_digits")
    p.dataset.data_dir = c.dataset.data_dir
    p.init_from = str(root / "ft")
    p.predict.batch_size = 128
    logits = np.load(jobs.run(p, str(root / "pred"))["file"])["logits"]
    return c, root, logits


def test_lora_run_exports_to_onnx_and_stablehlo_equal_on_digits(lora_run):
    config, root, logits = lora_run
    ex = load_config("export_digits")
    ex.dataset.data_dir = config.dataset.data_dir
    ex.init_from = str(root / "ft")
    ex.export.formats = FORMATS
    validate.validate(ex)
    out = root / "exported"
    manifest = jobs.run(ex, str(out))
    assert manifest["output"]["name"] == "logits" and manifest["inputs"][0]["dtype"] == "uint8"
    assert max(manifest["max_abs_diff"].values()) <= ATOL
    assert set(json.loads((out / "export.json").read_text())["files"]) == set(FORMATS.split(","))
    test = sources.get_source(ex.dataset, "test")
    images = np.stack([test[i]["image"] for i in range(len(test))])
    if ONNX:  # onnxruntime on the whole test split (359: another batch size than verified)
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out / "model.onnx"))
        assert session.get_inputs()[0].shape[0] == deploy.BATCH
        got = session.run(None, {"image": images})[0]
        np.testing.assert_allclose(got, logits, atol=ATOL)
    # StableHLO in a fresh interpreter that never imports jaxssl: jax + safetensors only.
    np.save(out / "images.npy", images[:100])
    script = f"""
import sys, jax, numpy as np
from safetensors.numpy import load_file
exp = jax.export.deserialize(open({str(out / "model.stablehlo")!r}, "rb").read())
out = exp.call(load_file({str(out / "model.weights.safetensors")!r}),
               np.load({str(out / "images.npy")!r}))
np.save({str(out / "stablehlo.npy")!r}, np.asarray(out))
assert not any(m.startswith("jaxssl") for m in sys.modules), "jaxssl was imported"
"""
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=out, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(out / "stablehlo.npy"), logits[:100], atol=ATOL)


def test_onnx_without_jax2onnx_is_one_config_error(monkeypatch, lora_run, tmp_path):
    config, root, _ = lora_run
    ex = load_config("export_digits")
    ex.dataset.data_dir = config.dataset.data_dir
    ex.init_from = str(root / "ft")
    ex.export.formats = "stablehlo,onnx"
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # import jax2onnx -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'jaxssl\[export\]'"):
        export_job.run(ex, str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_export_config_errors_come_before_anything_is_written(lora_run, tmp_path):
    config, root, _ = lora_run
    ex = load_config("export_digits")
    ex.dataset.data_dir = config.dataset.data_dir
    with pytest.raises(ConfigError, match="init_from"):
        export_job.run(ex, str(tmp_path / "a"))
    ex.init_from = str(root / "ft")
    ex.export.formats = "onnx,tflite"
    with pytest.raises(ConfigError, match="tflite"):
        export_job.run(ex, str(tmp_path / "b"))
    ex.export.formats = "hf"  # a small CNN has no public counterpart
    with pytest.raises(ConfigError, match="no public counterpart"):
        export_job.run(ex, str(tmp_path / "c"))


@pytest.mark.parametrize("name", ["resnet50", "vit"])
def test_image_encoders_convert_with_a_dynamic_batch(name, tmp_path):
    """ResNet (stem max-pool, BatchNorm) and ViT (attention) through both formats, with the
    uint8 -> resized, normalised eval view inside the graph."""
    if name == "resnet50":
        model = get_model("resnet50", width=0.125, stem="imagenet", stage_sizes=(1, 1, 1, 1))
    else:
        model = get_model("vit", patch_size=4, width=32, depth=2, num_heads=2)
    aug = ml_collections.ConfigDict({"image_size": 16, "mean": (0.4,), "std": (0.3,)})
    images = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 1)).astype(np.uint8)
    x = deploy.eval_view(jnp.asarray(images[:2]), aug)
    variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x, train=False))(x)

    def fn(weights, image):
        return model.apply(weights, deploy.eval_view(image, aug), train=False)[0]

    x = views.normalize(_resize(images, 16), aug.mean, aug.std)
    expected = np.asarray(jax.jit(lambda v, x: model.apply(v, x, False)[0])(variables, x))
    specs = deploy.specs({"image": images}, ["image"])
    if ONNX:
        import onnxruntime

        deploy.to_onnx(fn, variables, specs, str(tmp_path / "m.onnx"), ["image"], "embeddings")
        session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
        for n in (2, 7):
            got = session.run(None, {"image": images[:n]})[0]
            np.testing.assert_allclose(got, expected[:n], atol=ATOL)
    deploy.to_stablehlo(fn, variables, specs, str(tmp_path / "m.hlo"), str(tmp_path / "w.st"))
    exp = jax.export.deserialize((tmp_path / "m.hlo").read_bytes())
    from safetensors.numpy import load_file

    got = exp.call(load_file(str(tmp_path / "w.st")), images[:5])
    np.testing.assert_allclose(got, expected[:5], atol=ATOL)


def _resize(images: np.ndarray, size: int) -> jax.Array:
    """The eval view's resize as jaxssl's training code does it (jax.image.resize)."""
    x = jnp.asarray(images, jnp.float32) / 255.0
    x = jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "linear")
    return jnp.clip(x, 0.0, 1.0)


# ------------------------------------------------------------------ format hf, and back
@pytest.fixture
def torch():
    """torch and transformers, the references (test extras), or a skip."""
    pytest.importorskip("transformers")
    return pytest.importorskip("torch")


def _perturbed(params, seed=0):
    """Random params everywhere (biases, LayerNorm scales too), as training would leave them."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: (np.asarray(x) + 0.05 * rng.normal(size=x.shape)).astype(np.float32), params
    )


TEXT = dict(vocab_size=50, width=32, depth=2, num_heads=2, mlp_dim=64, max_len=24)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_text_models_saved_as_hf_load_in_transformers(family, tmp_path, torch):
    if family == "bert":
        block = dict(TEXT, norm="post", activation="gelu", ln_eps=1e-12, type_vocab_size=2)
        block.update(lm_transform=True, pooling="first")
    else:
        block = dict(TEXT, causal=True, output_bias=False, ln_eps=1e-5)
    model = get_model("transformer_base", **block)
    ids = np.random.default_rng(0).integers(0, 50, (2, 12))

    def lm(m, x):
        return m.logits(m(x)[1]["tokens"])

    params = _perturbed(jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x, method=lm))(ids))
    params = params["params"]
    tokens, logits = jax.jit(
        lambda p, x: model.apply(
            {"params": p}, x, method=lambda m, x: (m(x)[1]["tokens"], lm(m, x))
        )
    )(params, ids)
    assert save.save_pretrained(str(tmp_path), {"name": "transformer_base", **block}, params) == (
        family
    )
    from transformers import BertForMaskedLM, GPT2LMHeadModel

    cls = BertForMaskedLM if family == "bert" else GPT2LMHeadModel
    ref = cls.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        out = ref(input_ids=torch.tensor(ids), output_hidden_states=True)
    np.testing.assert_allclose(out.hidden_states[-1].numpy(), tokens, atol=ATOL)
    np.testing.assert_allclose(out.logits.numpy(), logits, atol=ATOL)
    back = interop.load(tmp_path)  # and jaxssl reads its own export back, same params
    for a, b in zip(jax.tree.leaves(back.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_trained_output_bias_has_no_gpt2_counterpart(tmp_path):
    block = dict(TEXT, causal=True, name="transformer_base")
    params = {"out_bias": np.ones(50, np.float32)}
    with pytest.raises(ConfigError, match="output_bias=False"):
        save.save_pretrained(str(tmp_path), block, params)
    with pytest.raises(ConfigError, match="onnx or stablehlo"):  # pre-LN bidirectional
        save.save_pretrained(str(tmp_path), dict(TEXT, name="transformer_base"), {})


def test_vit_saved_as_hf_loads_in_transformers(tmp_path, torch):
    block = dict(name="vit", patch_size=2, width=32, depth=2, num_heads=2)  # sin-cos positions
    model = get_model(**{k: v for k, v in block.items() if k != "name"}, name="vit")
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 1)).astype(np.float32)
    params = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x, train=False))(x)["params"]
    params = _perturbed(params)
    pooled, feats = jax.jit(lambda p, x: model.apply({"params": p}, x, False))(params, x)
    save.save_pretrained(
        str(tmp_path), block, params, image_size=8, channels=1, mean=(0.3,), std=(0.4,)
    )
    from transformers import ViTModel

    ref = ViTModel.from_pretrained(tmp_path, add_pooling_layer=False).eval()
    with torch.no_grad():
        out = ref(pixel_values=torch.tensor(x.transpose(0, 3, 1, 2))).last_hidden_state.numpy()
    np.testing.assert_allclose(out[:, 0], pooled, atol=ATOL)
    np.testing.assert_allclose(out[:, 1:], feats["tokens"], atol=ATOL)
    assert interop.preprocessing(interop.load(tmp_path))["mean"] == (0.3,)


def test_resnet_saved_as_torchvision_state_dict_loads_in_torch(tmp_path, torch):
    from . import torch_refs

    block = dict(name="resnet50", stem="imagenet", width=0.125, stage_sizes=(1, 1, 1, 1))
    model = get_model(**block)
    x = np.random.default_rng(2).normal(size=(2, 16, 16, 1)).astype(np.float32)
    variables = jax.jit(lambda x: model.init(jax.random.PRNGKey(0), x, train=False))(x)
    params = _perturbed(variables["params"])
    stats = jax.tree.map(lambda s: np.abs(s) + 0.5, _perturbed(variables["batch_stats"]))
    _, feats = jax.jit(lambda v, x: model.apply(v, x, train=False))(
        {"params": params, "batch_stats": stats}, x
    )
    save.save_pretrained(
        str(tmp_path), block, params, stats, image_size=16, channels=1, mean=(0.5,), std=(0.5,)
    )
    from safetensors.torch import load_file

    ref = torch_refs.ResNet((1, 1, 1, 1), 0.125, in_chans=1).eval()
    missing, unexpected = ref.load_state_dict(load_file(tmp_path / "model.safetensors"), False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    np.testing.assert_allclose(torch_refs.resnet_features(ref, x), feats["feature_map"], atol=ATOL)
    back = interop.load(tmp_path)  # a timm-style folder: jaxssl reads it back
    assert back.model["name"] == "resnet50" and back.family == "resnet"


def test_text_export_job_from_a_bert_folder(tmp_path, torch):
    from . import torch_refs

    torch_refs.tiny_bert(tmp_path / "bert")
    torch_refs.bert_tokenizer(tmp_path / "bert")
    ex = load_config("export_digits")
    ex.init_from = str(tmp_path / "bert")
    ex.dataset.name = f"text:{corpus_file(tmp_path)}"
    with ex.unlocked():
        ex.dataset.tokenizer = str(tmp_path / "bert")
        ex.dataset.seq_len = 16
    ex.export.split = "validation"
    ex.export.formats = FORMATS + ",hf"
    manifest = jobs.run(ex, str(tmp_path / "out"))
    assert [i["name"] for i in manifest["inputs"]] == ["tokens", "attention_mask"]
    assert max(manifest["max_abs_diff"].values()) <= ATOL
    assert manifest["files"]["hf"]["family"] == "bert"
    assert (tmp_path / "out" / "hf" / "tokenizer.json").exists()
