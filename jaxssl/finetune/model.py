"""The fine-tune model: a reused encoder (optionally with LoRA, AdaLoRA or adapters) + a head.

Params: {"encoder": <the pre-trained subtree as it is>, "head": ...,
["lora" | "adalora" | "adapter"]}; model_state: {"batch_stats": {"encoder": ...}} when the
encoder has BatchNorm, plus {"adalora": importance EMAs and rank masks} in adalora mode
(jaxssl/finetune/adalora.py). The encoder is
applied by its own module, so the fine-tune step works for any registered encoder whose
features dict holds `finetune.feature` (pooled by default; text encoders give it too).
"""

from contextlib import nullcontext
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxssl.augment import views
from jaxssl.finetune import adalora, adapters, lora
from jaxssl.methods.base import build_encoder
from jaxssl.models.heads import LinearHead, MLPHead

Params = Any


class FineTuneModel:
    """Builds, initialises and applies encoder + head from the config's finetune block."""

    def __init__(self, config: ml_collections.ConfigDict, num_outputs: int):
        self.config = config
        self.ft = config.finetune
        self.encoder = build_encoder(config.model)
        hidden = tuple(self.ft.get("head_hidden_dims", ()))
        if hidden:
            self.head = MLPHead(hidden_dims=hidden, out_dim=num_outputs, use_bn=False)
        else:
            self.head = LinearHead(num_classes=num_outputs)
        self.num_outputs = num_outputs
        self.mode = self.ft.mode
        if self.mode == "adalora":
            ac = self.ft.adalora
            self.adalora_patterns = tuple(ac.get("target_patterns") or self.ft.lora.target_patterns)
        # linear (or update_batch_stats=False): BatchNorm uses, and keeps, its running stats.
        self.encoder_train = self.mode != "linear" and self.ft.get("update_batch_stats", True)

    # --- inputs ---------------------------------------------------------------
    def inputs(self, batch: dict[str, jax.Array], rng: jax.Array | None) -> dict[str, jax.Array]:
        """Encoder inputs {"x", ...}: one augmented view when training, else the eval view.

        Text batches give int32 tokens and their attention mask, as the Transformer takes them.
        """
        if "image" not in batch:
            return {"x": batch["tokens"], "attention_mask": batch["attention_mask"] > 0}
        aug = self.config.augment
        if rng is not None and self.ft.get("train_augment", True):
            return {"x": views.batch_views(rng, batch["image"], aug, 1, batch.get(views.HW))[0]}
        return {"x": views.eval_view(batch["image"], aug, batch.get(views.HW))}

    # --- params ---------------------------------------------------------------
    def init_encoder(self, rng: jax.Array, inputs: dict) -> tuple[Params, dict[str, Any]]:
        """Fresh encoder (params, {collection: state}), as pre-training initialises it."""
        variables = self._call(self.encoder.init, rng, inputs, train=False)
        return variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def init(self, rng: jax.Array, batch: dict[str, jax.Array]) -> tuple[Params, dict[str, Any]]:
        """(params, model_state) with a fresh encoder, head and LoRA / adapter params."""
        k_enc, k_head, k_extra = jax.random.split(rng, 3)
        x = self.inputs(batch, None)
        enc_params, enc_state = self.init_encoder(k_enc, x)
        model_state = {k: {"encoder": v} for k, v in enc_state.items()}
        params = {"encoder": enc_params}
        if self.mode == "lora":
            lc = self.ft.lora
            params["lora"] = lora.init(k_extra, enc_params, lc.target_patterns, lc.rank)
        elif self.mode == "adalora":
            ac = self.ft.adalora
            params[adalora.KEY] = adalora.init(
                k_extra, enc_params, self.adalora_patterns, ac.init_rank
            )
            model_state[adalora.KEY] = adalora.init_state(params[adalora.KEY])
        elif self.mode == "adapter":
            ac = self.ft.adapter
            shapes = adapters.output_shapes(
                lambda: self._call(
                    self.encoder.apply, {"params": enc_params, **enc_state}, x, train=False
                ),
                ac.target_patterns,
            )
            params["adapter"] = adapters.init(k_extra, shapes, ac.bottleneck)
        feats = self.encode(params, model_state, x, train=False)[0]
        params["head"] = self.head.init(k_head, feats, train=False)["params"]
        return params, model_state

    def encoder_params(self, params: Params, model_state: dict[str, Any] | None = None) -> Params:
        """The encoder params the forward pass uses (LoRA / masked AdaLoRA merged in)."""
        if "lora" in params:
            lc = self.ft.lora
            return lora.merge(params["encoder"], params["lora"], lc.alpha, lc.rank)
        if adalora.KEY in params:
            ac = self.ft.adalora
            masks = model_state[adalora.KEY]["mask"]
            return adalora.merge(
                params["encoder"], params[adalora.KEY], masks, ac.alpha, ac.init_rank
            )
        return params["encoder"]

    def adalora_regulariser(self, params: Params) -> jax.Array:
        """gamma * sum of the orthogonality terms (0 outside adalora mode)."""
        if adalora.KEY not in params:
            return jnp.zeros((), jnp.float32)
        return self.ft.adalora.orth_weight * adalora.regulariser(params[adalora.KEY])

    # --- forward --------------------------------------------------------------
    @staticmethod
    def _call(fn, first: Any, inputs: dict[str, jax.Array], **kwargs) -> Any:
        """fn(first, inputs["x"], **other inputs, **kwargs): the encoder's call convention."""
        extra = {k: v for k, v in inputs.items() if k != "x"}
        return fn(first, inputs["x"], **extra, **kwargs)

    def encode(self, params, model_state, x, train: bool, rng: jax.Array | None = None):
        """(head input feature, all encoder features, updated model_state)."""
        variables = {"params": self.encoder_params(params, model_state)}
        # Encoder collections only (model_state["adalora"] is the fine-tune's own state).
        enc_state = adalora.encoder_state(model_state)
        variables.update({k: v["encoder"] for k, v in enc_state.items()})
        ctx = adapters.attach(params["adapter"]) if "adapter" in params else nullcontext()
        train = train and self.encoder_train
        rngs = {"dropout": rng} if train and rng is not None else None
        with ctx:
            if train and len(variables) > 1:
                (_, feats), updates = self._call(
                    self.encoder.apply,
                    variables,
                    x,
                    train=True,
                    mutable=list(enc_state),
                    rngs=rngs,
                )
                model_state = {k: {"encoder": v} for k, v in updates.items()}
            else:
                _, feats = self._call(self.encoder.apply, variables, x, train=train, rngs=rngs)
        feature = self.ft.get("feature", "pooled")
        if feature not in feats:
            raise ValueError(f"finetune.feature={feature!r} not in encoder features {list(feats)}")
        return feats[feature], feats, model_state

    def apply(
        self,
        params: Params,
        model_state: dict[str, Any],
        x: dict[str, jax.Array],
        train: bool,
        rng: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]:
        """(head outputs [B, num_outputs], encoder features, updated model_state)."""
        feat, feats, model_state = self.encode(params, model_state, x, train, rng)
        out = self.head.apply({"params": params["head"]}, feat, train=train)
        return out, feats, model_state

    # --- objective ------------------------------------------------------------
    def objective(
        self, outputs: jax.Array, batch: dict[str, jax.Array]
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Cross-entropy with label smoothing, or MSE for regression; plus metrics."""
        if self.ft.get("task", "classification") == "regression":
            target = batch.get("target", batch["label"]).astype(jnp.float32)
            pred = outputs[..., 0] if self.num_outputs == 1 else outputs
            mse = jnp.mean((pred - target) ** 2)
            return mse, {"mse": mse}
        labels = jax.nn.one_hot(batch["label"], self.num_outputs)
        smoothed = optax.smooth_labels(labels, self.ft.get("label_smoothing", 0.0))
        loss = optax.softmax_cross_entropy(outputs, smoothed).mean()
        acc = jnp.mean(jnp.argmax(outputs, -1) == batch["label"])
        return loss, {"accuracy": acc}

    def regulariser(self, params: Params, mask: Any) -> jax.Array:
        """l1 * sum|w| + l2 / 2 * sum w^2 over trainable kernels (ndim > 1)."""
        l1, l2 = self.ft.get("l1", 0.0), self.ft.get("l2", 0.0)
        kernels = [
            p
            for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask), strict=True)
            if m and p.ndim > 1
        ]
        total = jnp.zeros((), jnp.float32)
        if l1:
            total += l1 * sum(jnp.abs(p).sum() for p in kernels)
        if l2:
            total += 0.5 * l2 * sum(jnp.square(p).sum() for p in kernels)
        return total
