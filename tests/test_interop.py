"""Public checkpoints in: tiny random BERT / GPT-2 / ViT / ViT-MAE (transformers) and a
ResNet-50-named state dict (torchvision layout) saved to disk, read by jaxssl through
init_from, with outputs equal to the reference implementation's (float32, 1e-4)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxssl import generate, interop, jobs, validate
from jaxssl.augment import text as text_aug
from jaxssl.config import ConfigError
from jaxssl.data import sources, tokenizers
from jaxssl.data.text import DocumentSource
from jaxssl.finetune import job as finetune_job
from jaxssl.models import get_model
from jaxssl.train import checkpoint, pretrain, skeleton
from jaxssl.train import step as step_lib

from .helpers import load_config
from .text_helpers import corpus_file

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from . import torch_refs  # noqa: E402

ATOL = 1e-4


def _model(block: dict):
    kwargs = dict(block)
    return get_model(kwargs.pop("name"), **kwargs)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Folders and files of every public format, with their reference torch models."""
    root = tmp_path_factory.mktemp("public")
    text = open(corpus_file(root), encoding="utf-8").read()
    out = {"text": text, "root": root}
    out["bert"] = torch_refs.tiny_bert(root / "bert")
    out["bert_tok"] = torch_refs.bert_tokenizer(root / "bert")
    out["gpt2_tok"] = torch_refs.gpt2_tokenizer(root / "gpt2", text)
    out["gpt2"] = torch_refs.tiny_gpt2(root / "gpt2", 300)
    out["vit"] = torch_refs.tiny_vit(root / "vit", mae=False, channels=1)
    out["mae"] = torch_refs.tiny_vit(root / "vit_mae", mae=True, channels=3)
    resnet = torch_refs.random_resnet()
    state = {k: v for k, v in resnet.state_dict().items()}
    import safetensors.torch

    safetensors.torch.save_file(state, str(root / "resnet50.safetensors"))
    torch.save(state, root / "resnet50.pth")
    out["resnet"] = resnet
    return out


def test_bert_folder_equals_transformers_hidden_states_and_mlm_logits(ckpts):
    folder = ckpts["root"] / "bert"
    run = checkpoint.RunCheckpoint(folder)  # dispatches on the files: a ForeignCheckpoint
    assert isinstance(run, checkpoint.ForeignCheckpoint)
    block = run.config()["model"]
    assert block["norm"] == "post" and block["activation"] == "gelu" and block["ln_eps"] == 1e-12
    model = _model(block)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (3, 12))
    mask = np.ones((3, 12), np.int64)
    mask[1, 7:] = 0
    types = np.zeros((3, 12), np.int64)
    types[2, 6:] = 1
    wanted = {"params.encoder": jax.eval_shape(model.init, jax.random.PRNGKey(0), ids)["params"]}
    params = run.restore(wanted)["params.encoder"]
    assert "lm_dense" not in params  # an encoder-only job reads no MLM head
    params = interop.load(folder).params  # the full tree, MLM head included

    def fwd(p, x, m, t):
        _, feats = model.apply({"params": p}, x, attention_mask=m, token_type_ids=t)
        return feats["tokens"], model.apply({"params": p}, feats["tokens"], method=model.logits)

    tokens, logits = jax.jit(fwd)(params, ids, mask, types)
    with torch.no_grad():
        ref = ckpts["bert"](
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            token_type_ids=torch.tensor(types),
            output_hidden_states=True,
        )
    real = mask > 0  # padded positions are not defined alike (HF attends from them too)
    np.testing.assert_allclose(tokens[real], ref.hidden_states[-1].numpy()[real], atol=ATOL)
    np.testing.assert_allclose(logits[real], ref.logits.numpy()[real], atol=ATOL)


def test_gpt2_folder_equals_transformers_and_greedy_generation(ckpts):
    folder = ckpts["root"] / "gpt2"
    foreign = interop.load(folder)
    block = foreign.model
    assert block["causal"] and not block["output_bias"] and block["activation"] == "gelu_tanh"
    model = _model(block)
    ids = np.random.default_rng(1).integers(0, 300, (2, 16))

    def fwd(p, x):
        _, feats = model.apply({"params": p}, x)
        return feats["tokens"], model.apply({"params": p}, feats["tokens"], method=model.logits)

    tokens, logits = jax.jit(fwd)(foreign.params, ids)
    with torch.no_grad():
        ref = ckpts["gpt2"](input_ids=torch.tensor(ids), output_hidden_states=True)
    np.testing.assert_allclose(tokens, ref.hidden_states[-1].numpy(), atol=ATOL)
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=ATOL)
    # Greedy decoding with the KV cache picks the tokens transformers' generate picks.
    prompt = ids[:, :5]
    ours = jax.jit(
        lambda p, x: generate.sample_cached(
            model, p, x, num_tokens=10, key=jax.random.PRNGKey(0), temperature=0.0
        )
    )(foreign.params, prompt)
    with torch.no_grad():
        theirs = ckpts["gpt2"].generate(
            torch.tensor(prompt), max_new_tokens=10, do_sample=False, pad_token_id=299
        )
    np.testing.assert_array_equal(np.asarray(ours), theirs.numpy())


@pytest.mark.parametrize("name", ["vit", "vit_mae"])
def test_vit_folders_equal_transformers(ckpts, name):
    foreign = interop.load(ckpts["root"] / name)
    block = foreign.model
    # ViT-MAE's fixed table is recognised as MAE's sin-cos layout, not loaded as learned.
    assert block["pos_embedding"] == ("sincos_mae" if name == "vit_mae" else "learned")
    model = _model(block)
    channels = 3 if name == "vit_mae" else 1
    x = np.random.default_rng(2).normal(size=(2, 8, 8, channels)).astype(np.float32)
    pixels = torch.tensor(x.transpose(0, 3, 1, 2))
    ref_model = ckpts["mae" if name == "vit_mae" else "vit"]
    if name == "vit_mae":  # MAE's own random masking, given its noise: 4 of 16 patches kept
        noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = ref_model(pixel_values=pixels, noise=noise).last_hidden_state.numpy()
        keep = np.argsort(noise.numpy(), 1)[:, :4]
        pooled, feats = model.apply({"params": foreign.params}, x, False, keep_idx=keep)
    else:
        with torch.no_grad():
            ref = ref_model(pixel_values=pixels).last_hidden_state.numpy()
        pooled, feats = model.apply({"params": foreign.params}, x, False)
    np.testing.assert_allclose(pooled, ref[:, 0], atol=ATOL)
    np.testing.assert_allclose(feats["tokens"], ref[:, 1:], atol=ATOL)


@pytest.mark.parametrize("file", ["resnet50.safetensors", "resnet50.pth"])
def test_resnet50_state_dict_equals_torch(ckpts, file):
    foreign = interop.load(ckpts["root"] / file)
    assert foreign.model == {
        "name": "resnet50",
        "stem": "imagenet",
        "width": 0.125,
        "stage_sizes": [1, 1, 1, 1],
    }
    assert foreign.ignored == ["fc.bias", "fc.weight"]  # the classifier is not the encoder
    model = _model(foreign.model)
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 1)).astype(np.float32)
    variables = {"params": foreign.params, "batch_stats": foreign.batch_stats}
    pooled, feats = model.apply(variables, x, train=False)
    ref = torch_refs.resnet_features(ckpts["resnet"], x)
    np.testing.assert_allclose(feats["feature_map"], ref, atol=ATOL)
    np.testing.assert_allclose(pooled, ref.mean((1, 2)), atol=ATOL)


def test_pth_without_torch_names_the_safetensors_conversion(ckpts, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("no torch")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ConfigError, match="convert it to safetensors"):
        interop.load(ckpts["root"] / "resnet50.pth")


def test_checkpoint_tokenizers_keep_their_special_ids(ckpts):
    root, text = ckpts["root"], "The cats sat on the mat, hello world."
    bert = tokenizers.get_tokenizer(str(root / "bert"))
    hf = ckpts["bert_tok"]
    assert (bert.cls_id, bert.sep_id, bert.pad_id, bert.mask_id) == (47, 48, 0, 49)
    np.testing.assert_array_equal(bert.encode(text), hf(text, add_special_tokens=False).input_ids)
    # A document record is [CLS] text [SEP], as BERT's own tokenizer makes it.

    doc = DocumentSource([{"text": text}], bert, 32, ml_collections.ConfigDict())[0]
    n = int(doc["attention_mask"].sum())
    assert list(doc["tokens"][:n]) == hf(text).input_ids
    assert set(np.flatnonzero(bert.is_special())) == {0, 3, 47, 48, 49}
    gpt2 = tokenizers.get_tokenizer(str(root / "gpt2" / "tokenizer.json"))
    end = ckpts["gpt2_tok"].eos_token_id
    assert gpt2.eos_id == gpt2.bos_id == end == 299 and gpt2.mask_id is None
    ids = gpt2.encode(ckpts["text"][:200])
    np.testing.assert_array_equal(ids, ckpts["gpt2_tok"](ckpts["text"][:200]).input_ids)
    assert gpt2.decode(ids) == ckpts["text"][:200]
    assert gpt2.token_bytes()[ids].sum() == len(ckpts["text"][:200].encode("utf-8"))


def _text_config(method: str, ckpts, folder: str):
    c = load_config(f"{method}_pydoc")
    c.dataset.name = f"text:{ckpts['root'] / 'corpus.txt'}"
    c.dataset.tokenizer = str(ckpts["root"] / folder)
    c.dataset.seq_len = 16
    c.dataset.train_stride = 16
    c.dataset.eval_stride = 15
    c.batch_size = 8
    c.total_steps = 1
    c.log_every = 1
    c.checkpoint_every = 1
    c.eval.batch_size = 8
    c.eval.max_batches = 1
    c.eval.enabled = False
    c.init_from = str(ckpts["root"] / folder)
    with c.unlocked():
        c.model = ml_collections.ConfigDict(interop.load(ckpts["root"] / folder).model)
    return c


def test_pretrain_init_from_gpt2_folder_and_generate(ckpts, tmp_path):
    """The pre-training job's init_from loader (what the skeleton calls on a fresh run) puts
    the folder's weights in the state; the generate job samples from the folder directly."""
    config = _text_config("causal_lm", ckpts, "gpt2")
    validate.validate(config)
    parts = pretrain.build(config, None)
    state = step_lib.init_state(
        parts.method,
        parts.tx,
        0,
        {
            k: np.stack([parts.train_source[i][k] for i in range(2)])
            for k in ("tokens", "attention_mask")
        },
        jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",)),
    )
    loaded = parts.init_from(state).params["encoder"]
    expected = interop.load(ckpts["root"] / "gpt2").params
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    # generate straight from the folder: the model block comes from its config.json.
    config.job = "generate"
    config.generate.prompt = "The with statement"
    config.generate.num_tokens = 6
    config.generate.temperature = 0.0
    out = jobs.run(config, str(tmp_path / "gen"))
    assert out["kv_cache"] and len(out["samples"]) == config.generate.num_samples
    tok = ckpts["gpt2_tok"]  # greedy from [EOS] + prompt, as transformers generates it
    prompt = torch.tensor([[tok.eos_token_id, *tok(config.generate.prompt).input_ids]])
    with torch.no_grad():
        ids = ckpts["gpt2"].generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=299)
    assert out["samples"][0] == tok.decode(ids[0, prompt.shape[1] :])


def test_mlm_pretrain_from_bert_folder_is_bert_mlm(ckpts):
    """Continuing MLM from a BERT folder trains BERT's own objective: the tokenizer's [MASK]
    (49 here, jaxssl's 1 is [unused0]), random tokens only from non-special ids, and BERT's
    prediction head as loaded (no second head): the loss equals transformers' on the same
    corrupted batch."""
    config = _text_config("mlm", ckpts, "bert")
    validate.validate(config)
    parts = pretrain.build(config, None)
    method = parts.method
    batch = {
        k: np.stack([parts.train_source[i][k] for i in range(8)])
        for k in ("tokens", "attention_mask")
    }
    state = step_lib.init_state(
        method, parts.tx, 0, batch, jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    )
    params = parts.init_from(state).params
    assert set(params) == {"encoder"} and "lm_dense" in params["encoder"]  # BERT's head only
    tok = tokenizers.get_tokenizer(config.dataset.tokenizer)
    assert tok.mask_id == 49
    tokens, valid = jnp.asarray(batch["tokens"]), jnp.asarray(batch["attention_mask"] > 0)
    key = jax.random.PRNGKey(3)
    inputs, selected = map(np.asarray, text_aug.batched(method.mask_example, key, tokens, valid))
    special = tok.is_special()
    changed = selected & (inputs != np.asarray(tokens))
    assert (inputs[changed] == 49).mean() > 0.6
    assert not special[inputs[changed & (inputs != 49)]].any()
    assert not selected[special[np.asarray(tokens)]].any()
    sums, _ = jax.jit(lambda p, b: method._sums(p, b, key, False))(params, batch)
    labels = np.where(selected, np.asarray(tokens), -100)
    with torch.no_grad():
        ref = ckpts["bert"](
            input_ids=torch.tensor(inputs, dtype=torch.long),
            attention_mask=torch.tensor(np.asarray(valid), dtype=torch.long),
            labels=torch.tensor(labels, dtype=torch.long),
        )
    np.testing.assert_allclose(sums["nll"] / sums["count"], ref.loss.item(), rtol=1e-5)


def test_embed_job_from_bert_folder_equals_transformers(ckpts, tmp_path):
    config = load_config("predict_digits")
    config.job = "embed"
    config.init_from = str(ckpts["root"] / "bert")
    config.dataset.name = f"text:{ckpts['root'] / 'corpus.txt'}"
    with config.unlocked():
        config.dataset.tokenizer = str(ckpts["root"] / "bert")
        config.dataset.seq_len = 16
    config.predict.split = "validation"
    config.predict.batch_size = 64
    validate.validate(config)
    summary = jobs.run(config, str(tmp_path))
    emb = np.load(summary["file"])["embeddings"]
    source = sources.get_source(config.dataset, "validation")
    ids = np.stack([source[i]["tokens"] for i in range(4)])
    mask = np.stack([source[i]["attention_mask"] for i in range(4)])
    with torch.no_grad():
        ref = ckpts["bert"].bert(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    # pooled = the first token's hidden state (BERT's [CLS] position: pooling "first").
    np.testing.assert_allclose(emb[:4], ref.last_hidden_state[:, 0].numpy(), atol=ATOL)


def test_finetune_from_resnet_state_dict_and_mismatch_is_one_config_error(ckpts, tmp_path):
    config = load_config("finetune_digits")
    config.dataset.data_dir = str(tmp_path / "tfds")
    config.init_from = str(ckpts["root"] / "resnet50.safetensors")
    with config.unlocked():
        config.model = ml_collections.ConfigDict({"name": "resnet18", "stem": "imagenet"})
    with pytest.raises(ConfigError) as err:
        validate.validate(config)
    message = str(err.value)
    assert "--config.model.name='resnet50'" in message and "stage_sizes" in message
    assert message.count("\n") == 0
    with config.unlocked():
        config.model = ml_collections.ConfigDict(interop.load(config.init_from).model)
    validate.validate(config)  # fits now
    # The fine-tune job's loader puts the converted weights and BatchNorm statistics in place.
    parts = finetune_job.build(config, None)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    state = parts.init_from(skeleton.init_state(parts, config, mesh))
    foreign = interop.load(config.init_from)
    for got, want in (
        (state.params["encoder"], foreign.params),
        (state.model_state["batch_stats"]["encoder"], foreign.batch_stats),
    ):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)


def test_bert_folder_needs_a_bert_shaped_model(ckpts):
    config = _text_config("mlm", ckpts, "bert")
    config.model.norm = "pre"  # jaxssl's default pre-LN encoder
    run = checkpoint.RunCheckpoint(config.init_from)
    model = _model(config.model.to_dict())
    ids = jnp.zeros((2, 16), jnp.int32)
    shapes = {"params.encoder": jax.eval_shape(model.init, jax.random.PRNGKey(0), ids)["params"]}
    with pytest.raises(ConfigError, match="--config.model.norm='post'"):
        run.check_fits(shapes)
    # What the weights cannot show is checked against the job's model block when given.
    config.model.norm = "post"
    config.model.activation = "gelu_tanh"
    model = _model(config.model.to_dict())
    shapes = {"params.encoder": jax.eval_shape(model.init, jax.random.PRNGKey(0), ids)["params"]}
    run.check_fits(shapes)  # shapes alone fit
    with pytest.raises(ConfigError, match="model.activation='gelu_tanh' vs the checkpoint's"):
        run.check_fits(shapes, model=config.model)


def test_embed_job_from_vit_folder_on_digits_equals_transformers(ckpts, tmp_path):
    """The image path: the folder's own preprocessing (ViT: mean = std = 0.5, its image size)
    is the eval view, and embeddings equal ViTModel's [CLS] output on those pixels."""
    config = load_config("predict_digits")
    config.job = "embed"
    config.init_from = str(ckpts["root"] / "vit")
    config.dataset.data_dir = str(tmp_path / "tfds")
    config.predict.batch_size = 64
    validate.validate(config)
    emb = np.load(jobs.run(config, str(tmp_path / "emb"))["file"])["embeddings"]
    test = sources.get_source(config.dataset, "test")
    images = np.stack([test[i]["image"] for i in range(8)])
    pixels = (images.astype(np.float32) / 255.0 - 0.5) / 0.5  # 8x8 already: no resize
    with torch.no_grad():
        ref = ckpts["vit"](pixel_values=torch.tensor(pixels.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(emb[:8], ref.last_hidden_state[:, 0].numpy(), atol=ATOL)
