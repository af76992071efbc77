"""DINO (Caron et al. 2021): self-distillation with no labels, with on-device multi-crop.

Student = encoder + DINO head (MLP with GELU -> l2-normalised bottleneck -> weight-normalised
linear layer to method.out_dim outputs; its norm is fixed to 1 with method.norm_last_layer);
teacher = EMA of the student in model_state["target"] (no gradient; cosine momentum from
method.momentum to 1, momentum.py). Per example and step, views.multi_crop makes 2 global
crops (the augment recipe, the second with method.view2 overrides) and method.local_crops
local crops (method.local_view overrides: smaller image_size and crop_scale) inside the
jitted step, one key per view and example. The teacher sees the global crops, the student
every crop; losses.dino is the cross-entropy between the teacher's softmax((t - center) /
tau_t) and the student's log-softmax(s / tau_s) over all pairs of different views. The center
is an EMA (method.center_momentum) of the teacher outputs' mean over the global batch; tau_t
rises linearly from method.warmup_teacher_temp to method.teacher_temp over
method.teacher_temp_warmup_steps; the last layer gets no gradient for the first
method.freeze_last_layer_steps steps. Each resolution is one batch-norm batch (the official
MultiCropWrapper; method.bn_per_view splits further), which a ViT without BN ignores.

method.clip_grad clips each student parameter's gradient to that norm on its own, as the
official code (a global-norm clip would let the head's large early gradients, amplified by the
l2-normalised bottleneck, shrink the encoder's share to nothing).

Not here: the official weight-decay schedule (cosine 0.04 -> 0.4) needs the optimizer block to
take a schedule (train/optim.py passes a constant); positional-embedding interpolation for
learned ViT positions (use sin-cos positions, which any grid size gets).
"""

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl import losses
from jaxssl.augment import views
from jaxssl.methods import base
from jaxssl.methods.momentum import MomentumMethod
from jaxssl.models.vit import ViT

# torch's nn.Linear default (kaiming_uniform, a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
_TORCH_LINEAR_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def clip_grad(x: jax.Array, max_norm: float) -> jax.Array:
    """Identity whose backward pass scales x's gradient to norm <= max_norm (torch DINO's
    clip_gradients: per parameter tensor, coefficient max_norm / (norm + 1e-6))."""
    return x


def _clip_fwd(x, max_norm):
    return x, None


def _clip_bwd(max_norm, _, g):
    coef = max_norm / (jnp.sqrt(jnp.sum(jnp.square(g.astype(jnp.float32)))) + 1e-6)
    return ((g * jnp.minimum(coef, 1.0)).astype(g.dtype),)


clip_grad.defvjp(_clip_fwd, _clip_bwd)


class WeightNormLinear(nn.Module):
    """x @ (v / ||v||) * g, columns of v normalised; g fixed to 1 when `fixed_norm`."""

    features: int
    fixed_norm: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        v = self.param("v", _TORCH_LINEAR_INIT, (x.shape[-1], self.features))
        w = v * jax.lax.rsqrt(jnp.sum(jnp.square(v), axis=0, keepdims=True))
        out = x @ w
        if not self.fixed_norm:
            out = out * self.param("g", nn.initializers.ones, (self.features,))
        return out


class DINOHead(nn.Module):
    """Dense-GELU per hidden layer -> Dense bottleneck -> l2-normalise -> weight-normed Dense."""

    hidden_dims: Sequence[int]
    bottleneck_dim: int
    out_dim: int
    norm_last_layer: bool = True
    use_bn: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = x.astype(jnp.float32)
        dense = nn.initializers.truncated_normal(0.02)
        for i, dim in enumerate(self.hidden_dims):
            x = nn.Dense(dim, kernel_init=dense, name=f"dense{i}")(x)
            if self.use_bn:
                x = nn.BatchNorm(
                    use_running_average=not train, momentum=0.9, epsilon=1e-5, name=f"bn{i}"
                )(x)
            x = nn.gelu(x, approximate=False)
        x = nn.Dense(self.bottleneck_dim, kernel_init=dense, name="bottleneck")(x)
        x = losses.l2_normalize(x)
        return WeightNormLinear(self.out_dim, self.norm_last_layer, name="last_layer")(x)


class DINO(MomentumMethod):
    """Student (params: encoder, projector = the DINO head) distils the EMA teacher."""

    OPTIONS = {
        **MomentumMethod.OPTIONS,
        "norm_last_layer": base.Option(True, "weight-normalised last layer with its norm fixed"),
        "head_bn": base.Option(False, "batch norm in the head's MLP"),
        "view2": base.Option({}, "augment keys the second global crop overrides"),
        "local_view": base.Option({}, "augment keys the local crops override (size, scale)"),
        "clip_grad": base.Option(0.0, "clip each student leaf's gradient to this norm; 0: no"),
    }

    def __init__(self, config):
        m = config.method
        head = DINOHead(
            hidden_dims=tuple(m.head_hidden_dims),
            bottleneck_dim=m.bottleneck_dim,
            out_dim=m.out_dim,
            norm_last_layer=self.option(config, "norm_last_layer"),
            use_bn=self.option(config, "head_bn"),
        )
        super().__init__(config, head, None)
        self._check(m, self.option(config, "clip_grad"))
        self.global_cfgs = [
            config.augment,
            views.with_overrides(config.augment, self.option(config, "view2")),
        ]
        self.local_cfg = views.with_overrides(config.augment, self.option(config, "local_view"))
        sizes = {config.augment.image_size, self.local_cfg.image_size}
        if isinstance(self.encoder, ViT):
            p = self.encoder.patch_size
            if any(s % p for s in sizes):
                raise ValueError(f"crop sizes {sorted(sizes)} must be multiples of patch_size={p}")
            if self.encoder.pos_embedding == "learned" and len(sizes) > 1 and m.local_crops:
                raise ValueError(
                    "learned ViT positions fit one grid size: use model.pos_embedding='sincos' "
                    "for local crops of another size (interpolation is not implemented)"
                )

    @staticmethod
    def _check(m, clip: float) -> None:
        if not (isinstance(m.local_crops, int) and m.local_crops >= 0):
            raise ValueError(f"method.local_crops={m.local_crops!r} must be an integer >= 0")
        for key in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
            if not m[key] > 0:
                raise ValueError(f"method.{key}={m[key]} must be > 0 (paper: 0.1 / 0.04-0.07)")
        if not 0.0 <= m.center_momentum < 1.0:
            raise ValueError(f"method.center_momentum={m.center_momentum} must be in [0, 1)")
        if not clip >= 0:
            raise ValueError(f"method.clip_grad={clip} must be >= 0 (0: no clipping)")
        for key in ("teacher_temp_warmup_steps", "freeze_last_layer_steps"):
            if not (isinstance(m[key], int) and m[key] >= 0):
                raise ValueError(f"method.{key}={m[key]!r} must be an integer >= 0")

    def init(self, rng, batch):
        params, model_state = super().init(rng, batch)
        model_state["center"] = jnp.zeros((self.config.method.out_dim,), jnp.float32)
        return params, model_state

    def teacher_temp(self, step: jax.Array) -> jax.Array:
        """Linear from warmup_teacher_temp at step 0 to teacher_temp at the warm-up's end."""
        m = self.config.method
        progress = jnp.clip(step / max(m.teacher_temp_warmup_steps, 1), 0.0, 1.0)
        return m.warmup_teacher_temp + progress * (m.teacher_temp - m.warmup_teacher_temp)

    def student_params(self, params, step: jax.Array):
        """params as the loss uses them: each student leaf's gradient clipped to
        method.clip_grad, the head's last layer passing none while step < freeze steps."""
        m = self.config.method
        student = {k: params[k] for k in ("encoder", "projector")}
        clip = self.option(self.config, "clip_grad")
        if clip:
            student = jax.tree.map(lambda p: clip_grad(p, clip), student)
        if m.freeze_last_layer_steps:
            frozen = step < m.freeze_last_layer_steps
            head = dict(student["projector"])
            head["last_layer"] = jax.tree.map(
                lambda p: jnp.where(frozen, jax.lax.stop_gradient(p), p), head["last_layer"]
            )
            student["projector"] = head
        return {**params, **student}

    def loss(self, params, model_state, batch, rng, step):
        m = self.config.method
        n = batch["image"].shape[0]
        global_views, local_views = views.multi_crop(
            rng,
            batch["image"],
            self.global_cfgs,
            self.local_cfg,
            m.local_crops,
            batch.get(views.HW),
        )
        groups = self.view_groups(global_views)
        if local_views:
            groups += self.view_groups(local_views)
        student, pooled, stats = self.online_forward(
            self.student_params(params, step), model_state, groups
        )
        teacher, target = self.target_forward(model_state, self.view_groups(global_views))
        student = student.reshape(-1, n, m.out_dim)  # [V, N, K], globals first
        teacher = teacher.reshape(-1, n, m.out_dim)  # [2, N, K]
        temp = self.teacher_temp(step)
        center = model_state["center"]
        ssl = losses.dino(student, teacher, center, m.student_temp, temp)
        # EMA of the teacher outputs' mean over the global batch (every device's examples).
        batch_center = jnp.mean(teacher, axis=(0, 1))
        new_center = center * m.center_momentum + batch_center * (1.0 - m.center_momentum)
        probs = jax.nn.softmax((teacher - center) / temp, axis=-1)
        probe_loss, metrics = self.probe.loss(params, pooled[:n], batch)
        metrics |= {
            "ssl_loss": ssl,
            "teacher_temp": temp,
            "momentum": self.momentum(step),
            # Collapse shows here: ~0 (one-hot, one dimension wins) or log(K) (uniform).
            "teacher_entropy": -jnp.mean(jnp.sum(probs * jnp.log(probs + 1e-12), axis=-1)),
        }
        new_state = {**model_state, "batch_stats": stats, "target": target, "center": new_center}
        return ssl + probe_loss, (metrics, new_state)
