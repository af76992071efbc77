"""Causal language modelling (GPT, Radford et al. 2018/2019): next-token cross-entropy.

A record of L tokens trains L-1 predictions (token t+1 from tokens <= t). Evaluation reports
held-out nats per token (eval_loss), perplexity and bits per UTF-8 byte of the targets.
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

    def __init__(self, config):
        super().__init__(config)
        tok = lm_common.check_config(config, causal=True)
        self.encoder = base.build_encoder(config.model)
        self.net = CausalLMNet(self.encoder)
        self.token_bytes = lm_common.padded_table(tok.token_bytes(), config.model.vocab_size, 0)

    def init(self, rng, batch):
        tokens = batch["tokens"][:, :-1]
        variables = self.net.init(rng, tokens, batch["attention_mask"][:, :-1] > 0, train=False)
        return variables["params"], {}

    def logits(self, params, tokens: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        """Next-token logits [B, T, V] of tokens [B, T] (eval mode)."""
        valid = jnp.ones(tokens.shape, bool) if valid is None else valid
        return self.net.apply({"params": params}, tokens, valid, train=False)

    def _sums(self, params, batch, train, dropout_key=None):
        tokens, valid = batch["tokens"], batch["attention_mask"] > 0
        rngs = {"dropout": dropout_key} if train else {}
        logits = self.net.apply(
            {"params": params}, tokens[:, :-1], valid[:, :-1], train=train, rngs=rngs
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
        sums = self._sums(params, batch, True, rng)
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
            "eval_protocol": {"split": self.config.dataset.test_split},
        }
