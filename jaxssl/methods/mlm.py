"""Masked language modelling (BERT, Devlin et al. 2019) over a Transformer encoder.

15% of the non-special tokens of each sequence are selected (per-example keys, on device),
of those 80% become [MASK], 10% a random token, 10% stay; the loss and accuracy count only
selected positions. method.masking: "token" (BERT), "span" (SpanBERT-style geometric spans)
or "whole_word" (every token of a selected word).

Denoising (method.corruption, lm_common.Corruption; off by default = the objective above,
bit for bit): after masking, the training input also goes through a BART-style noising
recipe (random-token noise, text infilling, span deletion, sentence/span permutation) with
per-example keys, while the targets stay the clean tokens: position i predicts clean token i
wherever the MLM selected it OR the noisy input differs from it there (after a deletion or
permutation that is most later positions). Evaluation is unchanged: uncorrupted inputs.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxssl.augment import text as text_aug
from jaxssl.data import sources
from jaxssl.methods import base, lm_common

MASKINGS = ("token", "span", "whole_word")


class MLMHead(nn.Module):
    """BERT's transform before the output embedding: Dense -> GELU -> LayerNorm."""

    width: int

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        return nn.LayerNorm()(nn.gelu(nn.Dense(self.width)(h.astype(jnp.float32))))


class Identity(nn.Module):
    """No head: the encoder's own lm_transform is BERT's."""

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        return h


class MLMNet(nn.Module):
    """Encoder -> head -> vocabulary logits (the encoder's tied or separate output embedding)."""

    encoder: nn.Module
    head: nn.Module

    def __call__(self, tokens: jax.Array, valid: jax.Array, train: bool) -> jax.Array:
        _, features = self.encoder(tokens, train=train, attention_mask=valid)
        return self.encoder.logits(self.head(features["tokens"]))


class MLM(base.Method):
    """BERT-style masked-token prediction; params split as encoder/ head/."""

    OPTIONS = {
        **lm_common.CORRUPTION_OPTIONS,
        "masking": base.Option("token", "token | span | whole_word: what is masked together"),
        "mask_rate": base.Option(0.15, "fraction of tokens chosen for prediction"),
        "mask_token_frac": base.Option(0.8, "of those, the fraction replaced by [MASK]"),
        "random_token_frac": base.Option(0.1, "of those, the fraction replaced by a random token"),
    }

    def __init__(self, config):
        super().__init__(config)
        tok = lm_common.check_config(config, causal=False)
        self.encoder = base.build_encoder(config.model)
        # A BERT checkpoint's own prediction transform lives in the encoder (lm_transform):
        # stacking a second one on it would train a different network than the one loaded.
        head = Identity() if self.encoder.lm_transform else MLMHead(self.encoder.width)
        self.net = MLMNet(self.encoder, head)
        self.masking = self.option(config, "masking")
        if self.masking not in MASKINGS:
            raise ValueError(f"method.masking={self.masking!r}: use one of {', '.join(MASKINGS)}")
        self.rate = self.option(config, "mask_rate")
        self.mask_frac = self.option(config, "mask_token_frac")
        self.random_frac = self.option(config, "random_token_frac")
        if not 0 < self.rate < 1 or not 0 <= self.mask_frac + self.random_frac <= 1:
            raise ValueError(
                f"method.mask_rate={self.rate} must be in (0, 1) and mask_token_frac + "
                f"random_token_frac = {self.mask_frac + self.random_frac} in [0, 1]"
            )
        self.vocab = config.model.vocab_size
        self.mask_id = lm_common.mask_id_of(tok, "method mlm")  # the tokenizer's: BERT's is 103
        self.special_np = tok.is_special()
        self.is_space = lm_common.padded_table(tok.is_space(), self.vocab, False)
        self.word_initial = lm_common.padded_table(tok.word_initial(), self.vocab, False)
        self.corruption = lm_common.Corruption(config, tok)
        # The tokenizer's special-id and replacement-id tables, as the corruption built them.
        self.special, self.replacements = self.corruption.special, self.corruption.replacements

    def mask_example(self, key: jax.Array, tokens: jax.Array, valid: jax.Array):
        """(corrupted tokens, selected) of one [L] sequence."""
        k_sel, k_cor = jax.random.split(key)
        eligible = valid & ~self.special[tokens]
        if self.masking == "span":
            selected = text_aug.select_spans(k_sel, eligible, self.rate)
        elif self.masking == "whole_word":
            starts = text_aug.word_starts(tokens, self.is_space, self.word_initial, self.special)
            selected = text_aug.select_words(k_sel, eligible, starts, self.rate)
        else:
            selected = text_aug.select_tokens(k_sel, eligible, self.rate)
        inputs = text_aug.corrupt(
            k_cor,
            tokens,
            selected,
            mask_id=self.mask_id,
            replacements=self.replacements,
            mask_frac=self.mask_frac,
            random_frac=self.random_frac,
        )
        return inputs, selected

    def init(self, rng, batch):
        variables = self.net.init(rng, batch["tokens"], batch["attention_mask"] > 0, train=False)
        return variables["params"], {}

    def _sums(self, params, batch, key, train, dropout_key=None, noise_key=None):
        tokens, valid = batch["tokens"], batch["attention_mask"] > 0
        inputs, selected = text_aug.batched(self.mask_example, key, tokens, valid)
        seen = valid
        if noise_key is not None:  # denoising: noisy input, clean targets
            inputs, seen = self.corruption(noise_key, inputs, valid)
            selected = valid & (selected | (inputs != tokens))
        rngs = {"dropout": dropout_key} if train else {}
        logits = self.net.apply({"params": params}, inputs, seen, train=train, rngs=rngs)
        w = selected.astype(jnp.float32)
        if "mask" in batch:  # eval padding rows
            w = w * batch["mask"][:, None]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens)
        correct = (jnp.argmax(logits, -1) == tokens) * w
        return {"nll": (nll * w).sum(), "correct": correct.sum(), "count": w.sum()}, w

    def loss(self, params, model_state, batch, rng, step):
        del step
        k_mask, k_drop = jax.random.split(rng)
        k_noise = jax.random.fold_in(rng, 2) if self.corruption.enabled else None
        sums, w = self._sums(params, batch, k_mask, True, k_drop, k_noise)
        n = jnp.maximum(sums["count"], 1.0)
        valid = (batch["attention_mask"] > 0).sum()
        metrics = {
            "masked_accuracy": sums["correct"] / n,
            "selected_fraction": w.sum() / jnp.maximum(valid, 1),
        }
        return sums["nll"] / n, (metrics, model_state)

    def evaluate(self, params, model_state, mesh):
        """Held-out masked-token loss, perplexity and accuracy (fixed masking key)."""
        train_source = sources.get_source(self.config.dataset, self.config.dataset.train_split)
        majority = lm_common.most_frequent_token(train_source, self.special_np)
        eval_key = jax.random.PRNGKey(self.config.seed + 1)

        def sum_fn(params, model_state, batch, index):
            sums, w = self._sums(params, batch, jax.random.fold_in(eval_key, index), False)
            sums["majority_correct"] = ((batch["tokens"] == majority) * w).sum()
            return sums

        t = lm_common.eval_sums(sum_fn, params, model_state, self.config, mesh)
        n = max(t["count"], 1.0)
        return {
            "eval_loss": t["nll"] / n,
            "perplexity": math.exp(min(t["nll"] / n, 700.0)),
            "masked_accuracy": t["correct"] / n,
            "masked_accuracy_majority_baseline": t["majority_correct"] / n,
            "eval_masked_tokens": int(t["count"]),
            "eval_protocol": {
                "split": self.config.dataset.test_split,
                "masking": f"{self.masking}, rate {self.rate}, fixed key seed+1",
                "train_corruption": self.corruption.describe(),
                "majority_token": majority,
            },
        }
