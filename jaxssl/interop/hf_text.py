"""BERT and GPT-2 checkpoints (Hugging Face layout) <-> jaxssl Transformer params.

BERT is a post-LayerNorm encoder (`norm="post"`: embedding LayerNorm, LN after each residual),
exact GELU, LayerNorm eps 1e-12, token-type embeddings, and an MLM head whose transform
(Dense -> GELU -> LN) becomes the Transformer's `lm_transform` and whose decoder is tied to the
word embeddings with a bias. GPT-2 is a pre-LN causal decoder with tanh GELU (gelu_new), eps
1e-5 and a tied LM head without bias (`output_bias=False`). Attention projections: jaxssl's
fused qkv kernel is [width, 3, heads, head_dim] and the output kernel [heads, head_dim, width].
"""

from typing import Any

import numpy as np

from jaxssl.config import ConfigError
from jaxssl.interop import mapping
from jaxssl.interop.mapping import Reader

# HF activation names -> jaxssl Transformer.activation (both tanh forms are one formula).
ACT_IN = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
BERT_ACT_OUT = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu"}
GPT2_ACT_OUT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
HEAD = ("lm_dense", "lm_ln", "out", "out_bias")  # output-side leaves; not every job uses them


def _activation(name: str, source: str) -> str:
    if name not in ACT_IN:
        raise ConfigError(f"{source}: activation {name!r} is not supported: {', '.join(ACT_IN)}")
    return ACT_IN[name]


def _dims(width: int, depth: int, heads: int, mlp: int, vocab: int, max_len: int) -> dict:
    return {
        "name": "transformer_base",
        "vocab_size": vocab,
        "width": width,
        "depth": depth,
        "num_heads": heads,
        "mlp_dim": mlp,
        "max_len": max_len,
    }


# ------------------------------------------------------------------------------------ BERT
def bert_block(cfg: dict[str, Any], reader: Reader) -> dict[str, Any]:
    """The jaxssl model block of a BERT config.json (+ whether the file has an MLM head)."""
    if cfg.get("position_embedding_type", "absolute") != "absolute" or cfg.get("is_decoder"):
        raise ConfigError(
            f"{reader.source}: only BERT encoders with absolute positions are supported"
        )
    return {
        **_dims(
            cfg["hidden_size"],
            cfg["num_hidden_layers"],
            cfg["num_attention_heads"],
            cfg["intermediate_size"],
            cfg["vocab_size"],
            cfg["max_position_embeddings"],
        ),
        "causal": False,
        "norm": "post",
        "activation": _activation(cfg.get("hidden_act", "gelu"), reader.source),
        "ln_eps": float(cfg.get("layer_norm_eps", 1e-12)),
        "type_vocab_size": int(cfg.get("type_vocab_size", 2)),
        "tie_embeddings": bool(cfg.get("tie_word_embeddings", True)),
        "output_bias": True,
        "lm_transform": reader.has("cls.predictions.transform.dense.weight"),
        "pooling": "first",
    }


def bert_params(reader: Reader, block: dict[str, Any]) -> dict[str, Any]:
    """jaxssl Transformer params of a BERT state dict (MLM head included when present)."""
    d, h = block["width"], block["num_heads"]
    e = "embeddings"
    p: dict[str, Any] = {
        "embed": {"embedding": reader.take(f"{e}.word_embeddings.weight")},
        "pos_embed": reader.take(f"{e}.position_embeddings.weight"),
        "type_embed": {"embedding": reader.take(f"{e}.token_type_embeddings.weight")},
        "ln_embed": reader.layer_norm(f"{e}.LayerNorm"),
    }
    for i in range(block["depth"]):
        a = f"encoder.layer.{i}.attention"
        q, k, v = (reader.dense(f"{a}.self.{n}") for n in ("query", "key", "value"))
        out = reader.dense(f"{a}.output.dense")
        p[f"block{i}"] = {
            "qkv": {
                "kernel": np.stack([q["kernel"], k["kernel"], v["kernel"]], 1).reshape(
                    d, 3, h, d // h
                ),
                "bias": np.stack([q["bias"], k["bias"], v["bias"]]).reshape(3, h, d // h),
            },
            "out": {"kernel": out["kernel"].reshape(h, d // h, d), "bias": out["bias"]},
            "ln_attn": reader.layer_norm(f"{a}.output.LayerNorm"),
            "mlp_in": reader.dense(f"encoder.layer.{i}.intermediate.dense"),
            "mlp_out": reader.dense(f"encoder.layer.{i}.output.dense"),
            "ln_mlp": reader.layer_norm(f"encoder.layer.{i}.output.LayerNorm"),
        }
    if block["lm_transform"]:
        p["lm_dense"] = reader.dense("cls.predictions.transform.dense")
        p["lm_ln"] = reader.layer_norm("cls.predictions.transform.LayerNorm")
    bias_name = next(
        (n for n in ("cls.predictions.bias", "cls.predictions.decoder.bias") if reader.has(n)),
        None,
    )
    if bias_name is not None:
        bias = reader.take(bias_name)
        if block["tie_embeddings"]:
            p["out_bias"] = bias
        elif reader.has("cls.predictions.decoder.weight"):
            p["out"] = {"kernel": reader.take("cls.predictions.decoder.weight").T, "bias": bias}
    if block["tie_embeddings"] and reader.has("cls.predictions.decoder.weight"):
        reader.take("cls.predictions.decoder.weight")  # the tied copy of the word embeddings
    return p


def bert_state(params: dict[str, Any], block: dict[str, Any]) -> tuple[dict, dict]:
    """(state dict, config.json) of a BERT (BertForMaskedLM when the model has lm_transform)."""
    d, h = block["width"], block["num_heads"]
    mlm = bool(block.get("lm_transform")) and "lm_dense" in params  # else the encoder only
    pre = "bert." if mlm else ""
    e = f"{pre}embeddings"
    types = block.get("type_vocab_size", 0)
    type_table = params["type_embed"]["embedding"] if types else np.zeros((1, d), np.float32)
    sd = {
        f"{e}.word_embeddings.weight": params["embed"]["embedding"],
        f"{e}.position_embeddings.weight": params["pos_embed"],
        f"{e}.token_type_embeddings.weight": type_table,
        **mapping.flat(f"{e}.LayerNorm", mapping.layer_norm(params["ln_embed"])),
    }
    for i in range(block["depth"]):
        b = params[f"block{i}"]
        a = f"{pre}encoder.layer.{i}.attention"
        kernel = np.asarray(b["qkv"]["kernel"]).reshape(d, 3, d)
        bias = np.asarray(b["qkv"]["bias"]).reshape(3, d)
        for j, n in enumerate(("query", "key", "value")):
            sd[f"{a}.self.{n}.weight"] = kernel[:, j].T
            sd[f"{a}.self.{n}.bias"] = bias[j]
        sd[f"{a}.output.dense.weight"] = np.asarray(b["out"]["kernel"]).reshape(d, d).T
        sd[f"{a}.output.dense.bias"] = b["out"]["bias"]
        sd.update(mapping.flat(f"{a}.output.LayerNorm", mapping.layer_norm(b["ln_attn"])))
        layer = f"{pre}encoder.layer.{i}"
        sd.update(mapping.flat(f"{layer}.intermediate.dense", mapping.linear(b["mlp_in"])))
        sd.update(mapping.flat(f"{layer}.output.dense", mapping.linear(b["mlp_out"])))
        sd.update(mapping.flat(f"{layer}.output.LayerNorm", mapping.layer_norm(b["ln_mlp"])))
    tied = bool(block.get("tie_embeddings", True))
    if mlm:
        t = "cls.predictions.transform"
        sd.update(mapping.flat(f"{t}.dense", mapping.linear(params["lm_dense"])))
        sd.update(mapping.flat(f"{t}.LayerNorm", mapping.layer_norm(params["lm_ln"])))
        vocab = block["vocab_size"]
        if tied:
            bias = params.get("out_bias", np.zeros(vocab, np.float32))
        else:
            out = params["out"]
            sd["cls.predictions.decoder.weight"] = np.asarray(out["kernel"]).T
            bias = out.get("bias", np.zeros(vocab, np.float32))
        sd["cls.predictions.bias"] = bias
    config = {
        "model_type": "bert",
        "architectures": ["BertForMaskedLM" if mlm else "BertModel"],
        "vocab_size": block["vocab_size"],
        "hidden_size": d,
        "num_hidden_layers": block["depth"],
        "num_attention_heads": h,
        "intermediate_size": block["mlp_dim"],
        "hidden_act": BERT_ACT_OUT[block.get("activation", "gelu_tanh")],
        "max_position_embeddings": block["max_len"],
        "type_vocab_size": max(types, 1),
        "layer_norm_eps": block.get("ln_eps", 1e-6),
        "tie_word_embeddings": tied,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "pad_token_id": 0,
    }
    return sd, config


# ------------------------------------------------------------------------------------ GPT-2
def gpt2_block(cfg: dict[str, Any], reader: Reader) -> dict[str, Any]:
    """The jaxssl model block of a GPT-2 config.json."""
    if cfg.get("scale_attn_by_inverse_layer_idx") or not cfg.get("scale_attn_weights", True):
        raise ConfigError(f"{reader.source}: GPT-2 attention scaling variants are not supported")
    width = cfg["n_embd"]
    return {
        **_dims(
            width,
            cfg["n_layer"],
            cfg["n_head"],
            cfg.get("n_inner") or 4 * width,
            cfg["vocab_size"],
            cfg["n_positions"],
        ),
        "causal": True,
        "norm": "pre",
        "activation": _activation(cfg.get("activation_function", "gelu_new"), reader.source),
        "ln_eps": float(cfg.get("layer_norm_epsilon", 1e-5)),
        "type_vocab_size": 0,
        "tie_embeddings": bool(cfg.get("tie_word_embeddings", True)),
        "output_bias": False,
        "lm_transform": False,
        "pooling": "mean",
    }


def gpt2_params(reader: Reader, block: dict[str, Any]) -> dict[str, Any]:
    """jaxssl Transformer params of a GPT-2 state dict (GPT2Model or GPT2LMHeadModel)."""
    d, h = block["width"], block["num_heads"]
    p: dict[str, Any] = {
        "embed": {"embedding": reader.take("wte.weight")},
        "pos_embed": reader.take("wpe.weight"),
        "ln_final": reader.layer_norm("ln_f"),
    }
    for i in range(block["depth"]):
        b = f"h.{i}"
        p[f"block{i}"] = {
            "ln_attn": reader.layer_norm(f"{b}.ln_1"),
            "qkv": {  # Conv1D weights are already [in, out]
                "kernel": reader.take(f"{b}.attn.c_attn.weight").reshape(d, 3, h, d // h),
                "bias": reader.take(f"{b}.attn.c_attn.bias").reshape(3, h, d // h),
            },
            "out": {
                "kernel": reader.take(f"{b}.attn.c_proj.weight").reshape(h, d // h, d),
                "bias": reader.take(f"{b}.attn.c_proj.bias"),
            },
            "ln_mlp": reader.layer_norm(f"{b}.ln_2"),
            "mlp_in": {
                "kernel": reader.take(f"{b}.mlp.c_fc.weight"),
                "bias": reader.take(f"{b}.mlp.c_fc.bias"),
            },
            "mlp_out": {
                "kernel": reader.take(f"{b}.mlp.c_proj.weight"),
                "bias": reader.take(f"{b}.mlp.c_proj.bias"),
            },
        }
        for buffer in (f"{b}.attn.bias", f"{b}.attn.masked_bias"):  # old causal-mask buffers
            if reader.has(buffer):
                reader.used.add(buffer)
    if reader.has("lm_head.weight"):
        weight = reader.take("lm_head.weight")
        if not block["tie_embeddings"]:
            p["out"] = {"kernel": weight.T}
    return p


def gpt2_state(params: dict[str, Any], block: dict[str, Any]) -> tuple[dict, dict]:
    """(state dict, config.json) of a GPT2LMHeadModel."""
    d, h = block["width"], block["num_heads"]
    bias = params.get("out_bias", params.get("out", {}).get("bias"))
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise ConfigError(
            "GPT-2's LM head has no bias but this model's output bias is trained: train with "
            "--config.model.output_bias=False (configs/causal_lm_gpt2_pydoc.py does) or export "
            "with export.format=onnx / stablehlo"
        )
    sd = {
        "transformer.wte.weight": params["embed"]["embedding"],
        "transformer.wpe.weight": params["pos_embed"],
        **mapping.flat("transformer.ln_f", mapping.layer_norm(params["ln_final"])),
    }
    for i in range(block["depth"]):
        b, t = params[f"block{i}"], f"transformer.h.{i}"
        sd.update(mapping.flat(f"{t}.ln_1", mapping.layer_norm(b["ln_attn"])))
        sd.update(mapping.flat(f"{t}.ln_2", mapping.layer_norm(b["ln_mlp"])))
        sd[f"{t}.attn.c_attn.weight"] = np.asarray(b["qkv"]["kernel"]).reshape(d, 3 * d)
        sd[f"{t}.attn.c_attn.bias"] = np.asarray(b["qkv"]["bias"]).reshape(3 * d)
        sd[f"{t}.attn.c_proj.weight"] = np.asarray(b["out"]["kernel"]).reshape(d, d)
        sd[f"{t}.attn.c_proj.bias"] = b["out"]["bias"]
        sd[f"{t}.mlp.c_fc.weight"] = b["mlp_in"]["kernel"]
        sd[f"{t}.mlp.c_fc.bias"] = b["mlp_in"]["bias"]
        sd[f"{t}.mlp.c_proj.weight"] = b["mlp_out"]["kernel"]
        sd[f"{t}.mlp.c_proj.bias"] = b["mlp_out"]["bias"]
    tied = bool(block.get("tie_embeddings", True))
    if not tied:
        sd["lm_head.weight"] = np.asarray(params["out"]["kernel"]).T
    config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": block["vocab_size"],
        "n_embd": d,
        "n_layer": block["depth"],
        "n_head": h,
        "n_inner": block["mlp_dim"],
        "n_positions": block["max_len"],
        "activation_function": GPT2_ACT_OUT[block.get("activation", "gelu_tanh")],
        "layer_norm_epsilon": block.get("ln_eps", 1e-6),
        "tie_word_embeddings": tied,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    }
    return sd, config


def text_family(block: dict[str, Any]) -> str:
    """ "bert" or "gpt2": the Hugging Face architecture a jaxssl Transformer block maps onto;
    ConfigError naming the options otherwise."""
    if block.get("norm", "pre") == "post" and not block.get("causal", False):
        return "bert"
    if block.get("causal", False) and block.get("norm", "pre") == "pre":
        if block.get("type_vocab_size", 0) or block.get("lm_transform", False):
            raise ConfigError("GPT-2 has no token types or LM transform: model does not map")
        return "gpt2"
    raise ConfigError(
        "format=hf needs a Transformer that is BERT-shaped (--config.model.norm=post, "
        "causal=False) or GPT-2-shaped (causal=True, norm=pre); this one has "
        f"norm={block.get('norm', 'pre')!r}, causal={block.get('causal', False)}: use "
        "export.format=onnx or stablehlo for it"
    )
