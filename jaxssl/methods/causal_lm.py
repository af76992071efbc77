"""Causal language modelling (GPT, Radford et al. 2018/2019): next-token cross-entropy.

A record of L tokens trains L-1 predictions (token t+1 from tokens <= t). Evaluation reports
held-out nats per token (eval_loss), perplexity and bits per UTF-8 byte of the targets.

Denoising (method.corruption, lm_common.Corruption; off by default = the objective above,
bit for bit): the decoder reads a noisy copy c of the clean record x (random-token noise,
text infilling, span deletion, sentence/span permutation; per-example keys) and position t,
which sees c[0..t] only, is trained on the CLEAN next token x[t+1], over the same L-1
targets (clean padding mask) as without noise. After a deletion the noisy copy is shorter:
its tail is padding (masked as attention keys) whose positions still predict the clean tail.
This is a decoder-only formulation; a BART-style encoder-decoder (encode c, decode x) is out
of scope. Evaluation is unchanged: uncorrupted inputs.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxssl.methods import base, lm_common


class CausalLMNet(nn.Module):
    """Decoder -> vocabulary logits at every position."""

    encoder: nn.Module

    def __call__(self, tokens: jax.Array, valid: jax.Array, train: bool) -> jax.Array:
        _, features = self.encoder(tokens, train=train, attention_mask=valid)
        return self.encoder.logits(features["tokens"])


class CausalLM(base.Method):
    """GPT-style decoder trained on next-token prediction; params under encoder/."""

    OPTIONS = lm_common.CORRUPTION_OPTIONS

    def __init__(self, config):
        super().__init__(config)
        tok = lm_common.check_config(config, causal=True)
        self.encoder = base.build_encoder(config.model)
        self.net = CausalLMNet(self.encoder)
        self.token_bytes = lm_common.padded_table(tok.token_bytes(), config.model.vocab_size, 0)
        self.corruption = lm_common.Corruption(config, tok)

    def init(self, rng, batch):
        tokens = batch["tokens"][:, :-1]
        variables = self.net.init(rng, tokens, batch["attention_mask"][:, :-1] > 0, train=False)
        return variables["params"], {}

    def logits(self, params, tokens: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        """Next-token logits [B, T, V] of tokens [B, T] (eval mode)."""
        valid = jnp.ones(tokens.shape, bool) if valid is None else valid
        return self.net.apply({"params": params}, tokens, valid, train=False)

    def _sums(self, params, batch, train, dropout_key=None, noise_key=None):
        tokens, valid = batch["tokens"], batch["attention_mask"] > 0
        inputs, seen = tokens, valid
        if noise_key is not None:  # denoising: noisy context, clean next tokens
            inputs, seen = self.corruption(noise_key, tokens, valid)
        rngs = {"dropout": dropout_key} if train else {}
        logits = self.net.apply(
            {"params": params}, inputs[:, :-1], seen[:, :-1], train=train, rngs=rngs
        )
        targets = tokens[:, 1:]
        w = valid[:, 1:].astype(jnp.float32)
        if "mask" in batch:  # eval padding rows
            w = w * batch["mask"][:, None]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        correct = (jnp.argmax(logits, -1) == targets) * w
        return {
            "nll": (nll * w).sum(),
            "correct": correct.sum(),
            "count": w.sum(),
            "bytes": (self.token_bytes[targets] * w).sum(),
        }

    def loss(self, params, model_state, batch, rng, step):
        del step
        k_noise = jax.random.fold_in(rng, 2) if self.corruption.enabled else None
        sums = self._sums(params, batch, True, rng, k_noise)
        n = jnp.maximum(sums["count"], 1.0)
        return sums["nll"] / n, ({"next_token_accuracy": sums["correct"] / n}, model_state)

    def evaluate(self, params, model_state, mesh):
        """Held-out loss (nats/token), perplexity, bits per byte, next-token accuracy."""

        def sum_fn(params, model_state, batch, index):
            del model_state, index
            return self._sums(params, batch, False)

        t = lm_common.eval_sums(sum_fn, params, model_state, self.config, mesh)
        n = max(t["count"], 1.0)
        return {
            "eval_loss": t["nll"] / n,
            "perplexity": math.exp(min(t["nll"] / n, 700.0)),
            "bits_per_byte": t["nll"] / math.log(2) / max(t["bytes"], 1.0),
            "next_token_accuracy": t["correct"] / n,
            "eval_tokens": int(t["count"]),
            "eval_protocol": {
                "split": self.config.dataset.test_split,
                "train_corruption": self.corruption.describe(),
            },
        }
