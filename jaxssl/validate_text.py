"""Config checks for text datasets and language-model methods (called by validate.py)."""

import ml_collections

from jaxssl import models
from jaxssl.config import ConfigError
from jaxssl.data import text as text_data

LM_METHODS = ("mlm", "causal_lm")


def validate_text(config: ml_collections.ConfigDict, info) -> None:
    """Raises ConfigError when seq_len, tokenizer, vocabulary or model shape cannot work."""
    ds, model = config.dataset, config.model
    seq_len = ds.get("seq_len")
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 2:
        raise ConfigError(
            f"dataset.seq_len={seq_len!r} must be an integer >= 2 (tokens per record)"
        )
    for key in ("train_stride", "eval_stride"):
        stride = ds.get(key)
        if stride is not None and not (isinstance(stride, int) and 1 <= stride <= seq_len):
            raise ConfigError(
                f"dataset.{key}={stride!r} must be an integer in [1, seq_len={seq_len}]"
            )
    name = config.method.name
    if name not in LM_METHODS and not model.name.startswith("transformer"):
        return  # another method on text (e.g. a fine-tune job) checks its own model
    if not model.name.startswith("transformer"):
        raise ConfigError(
            f"method.name={name!r} needs a Transformer: set --config.model.name to one of "
            f"{', '.join(n for n in models.model_names() if n.startswith('transformer'))}"
        )
    vocab = info.vocab_size
    if model.get("vocab_size") is None or model.vocab_size < vocab:
        tok = text_data.tokenizer_of(ds)
        raise ConfigError(
            f"model.vocab_size={model.get('vocab_size')!r} cannot hold the {vocab} ids of {tok!r}:"
            f" set --config.model.vocab_size={vocab}"
        )
    need = seq_len - 1 if name == "causal_lm" else seq_len
    if model.get("max_len", 128) < need:
        raise ConfigError(
            f"model.max_len={model.get('max_len', 128)} < {need} positions the {name} step feeds"
            f" (dataset.seq_len={seq_len}): set --config.model.max_len={need}"
        )
    causal = bool(model.get("causal", False))
    if name == "causal_lm" and not causal:
        raise ConfigError(
            "method.name='causal_lm' needs a causal decoder: set --config.model.causal=True"
        )
    if name == "mlm" and causal:
        raise ConfigError(
            "method.name='mlm' needs a bidirectional encoder: set --config.model.causal=False"
        )
    if name == "mlm":
        masking = config.method.get("masking", "token")
        if masking not in ("token", "span", "whole_word"):
            raise ConfigError(f"method.masking={masking!r}: use 'token', 'span' or 'whole_word'")
        rate = config.method.get("mask_rate", 0.15)
        fracs = config.method.get("mask_token_frac", 0.8) + config.method.get(
            "random_token_frac", 0.1
        )
        if not 0 < rate < 1 or not 0 <= fracs <= 1:
            raise ConfigError(
                f"method.mask_rate={rate} must be in (0, 1) and mask_token_frac + random_token_frac"
                f" = {fracs} in [0, 1]"
            )
    width, heads = model.get("width"), model.get("num_heads")
    if width is not None and heads is not None and width % heads:
        raise ConfigError(f"model.width={width} is not divisible by model.num_heads={heads}")
