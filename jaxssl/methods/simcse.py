"""SimCSE (Gao et al. 2021), unsupervised: two views of each sequence, InfoNCE over the batch.

Views: the same tokens through the Transformer twice with independent dropout masks
(model.dropout > 0; SimCSE uses 0.1) and, optionally, each view through the text noising
recipe method.corruption (lm_common.Corruption: token noise, infilling, span deletion,
sentence/span permutation; one key per example and view), so the method also runs with
dropout 0. Both views go through one forward pass of the concatenated batch.
Representation: the encoder's pooled output (mean over real tokens); training adds SimCSE's
MLP pooler (Dense + tanh, method.mlp_pooler) that evaluation drops. Loss: SimCSE eq. 1, view 1
of example i must pick its view 2 among the N views 2 of the GLOBAL batch (a dense product
under jit: every device's examples are negatives), cosine / temperature (0.05) =
losses.info_nce / (2 * temperature) (info_nce carries MoCo v3's 2T scale).
Evaluation: on a labelled dataset (corpora:, tfds text classification) None, so the standard
frozen-encoder protocol (kNN, linear probe) runs; on unlabelled text its own held-out
contrastive loss and top-1 among eval.batch_size candidates, with fixed dropout/noise keys.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.data import sources
from jaxssl.methods import base, lm_common


class Pooler(nn.Module):
    """SimCSE's training-time MLP over the sentence representation: Dense -> tanh."""

    width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(nn.Dense(self.width)(x.astype(jnp.float32)))


class SimCSENet(nn.Module):
    """Encoder -> pooled -> (pooler); params split as encoder/ (head/)."""

    encoder: nn.Module
    head: nn.Module | None

    def __call__(self, tokens: jax.Array, valid: jax.Array, train: bool):
        pooled, features = self.encoder(tokens, train=train, attention_mask=valid)
        z = self.head(pooled) if self.head is not None else pooled.astype(jnp.float32)
        return z, features


class SimCSE(base.Method):
    """Unsupervised SimCSE on a Transformer encoder's pooled output."""

    OPTIONS = {
        **base.PROBE_OPTIONS,
        **lm_common.CORRUPTION_OPTIONS,
        "temperature": base.Option(0.05, "softmax temperature of the in-batch contrastive loss"),
        "mlp_pooler": base.Option(True, "MLP over the [CLS] output in training (SimCSE)"),
    }

    def __init__(self, config):
        super().__init__(config)
        tok = lm_common.check_config(config, causal=False)
        self.temperature = self.option(config, "temperature")
        if not self.temperature > 0:
            raise ValueError(f"method.temperature={self.temperature} must be > 0, e.g. 0.05")
        self.corruption = lm_common.Corruption(config, tok)
        if not config.model.get("dropout", 0.0) > 0 and not self.corruption.enabled:
            raise ValueError(
                "simcse needs two different views: set --config.model.dropout=0.1 (SimCSE) "
                "or a method.corruption recipe, e.g. --config.method.corruption.token_noise=0.1"
            )
        self.encoder = base.build_encoder(config.model)
        head = Pooler(self.encoder.width) if self.option(config, "mlp_pooler") else None
        self.net = SimCSENet(self.encoder, head)

    def init(self, rng, batch):
        tokens, valid = batch["tokens"], batch["attention_mask"] > 0
        net_rng, probe_rng = jax.random.split(rng)
        variables = self.net.init(net_rng, tokens, valid, train=False)
        _, features = self.net.apply(variables, tokens, valid, train=False)
        params = dict(variables["params"]) | self.probe.init(probe_rng, features["pooled"], batch)
        return params, {}

    def views(
        self, params: Any, batch: dict[str, jax.Array], rng: jax.Array
    ) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
        """(z1 [N, D], z2 [N, D], features of both views): one dropout pass over [x1; x2]."""
        tokens, valid = batch["tokens"], batch["attention_mask"] > 0
        k_drop, k_1, k_2 = jax.random.split(rng, 3)
        x1, m1, x2, m2 = tokens, valid, tokens, valid
        if self.corruption.enabled:
            x1, m1 = self.corruption(k_1, tokens, valid)
            x2, m2 = self.corruption(k_2, tokens, valid)
        net_params = {k: v for k, v in params.items() if k in ("encoder", "head")}
        z, features = self.net.apply(
            {"params": net_params},
            jnp.concatenate([x1, x2]),
            jnp.concatenate([m1, m2]),
            train=True,
            rngs={"dropout": k_drop},
        )
        n = tokens.shape[0]
        return z[:n], z[n:], features

    def loss(self, params, model_state, batch, rng, step):
        del step
        z1, z2, features = self.views(params, batch, rng)
        scaled, acc = losses.info_nce(z1, z2, self.temperature)
        loss = scaled / (2.0 * self.temperature)  # SimCSE's -log softmax, unscaled
        n = z1.shape[0]
        probe_loss, metrics = self.probe.loss(params, features["pooled"][:n], batch)
        metrics |= {"contrastive_acc": acc, "ssl_loss": loss}
        return loss + probe_loss, (metrics, model_state)

    def evaluate(self, params, model_state, mesh):
        """None on labelled data (kNN + linear probe); else held-out contrastive loss/top-1."""
        if sources.dataset_info(self.config.dataset).num_classes is not None:
            return None
        eval_key = jax.random.PRNGKey(self.config.seed + 1)

        def sum_fn(params, model_state, batch, index):
            del model_state
            z1, z2, _ = self.views(params, batch, jax.random.fold_in(eval_key, index))
            real = batch["mask"] > 0 if "mask" in batch else jnp.ones(z1.shape[0], bool)
            nll, correct = losses.info_nce_rows(z1, z2, self.temperature, real)
            w = real.astype(jnp.float32)
            return {"nll": (nll * w).sum(), "correct": (correct * w).sum(), "count": w.sum()}

        t = lm_common.eval_sums(sum_fn, params, model_state, self.config, mesh)
        n = max(t["count"], 1.0)
        return {
            "eval_contrastive_loss": t["nll"] / n,
            "eval_contrastive_top1": t["correct"] / n,
            "eval_sequences": int(t["count"]),
            "eval_protocol": {
                "split": self.config.dataset.test_split,
                "candidates": f"the views 2 of each eval batch of {self.config.eval.batch_size}",
                "views": f"dropout {self.config.model.get('dropout', 0.0)}, corruption "
                f"{self.corruption.describe()}, fixed keys seed+1",
            },
        }
