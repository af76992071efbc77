"""Augmentation recipes (SimCLR, BYOL, digits) as ConfigDicts, and batched view generation."""

import jax
import jax.numpy as jnp
import ml_collections

from jaxssl.augment import image as aug
from jaxssl.data.images import HW  # noqa: F401  (re-exported for the methods)

Array = jax.Array

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _simclr() -> dict:
    """SimCLR v1 ImageNet recipe (Chen et al. 2020, appendix A), colour strength s = 1."""
    return dict(
        recipe="simclr",
        image_size=224,
        crop_scale=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        flip_prob=0.5,
        jitter_prob=0.8,
        brightness=0.8,
        contrast=0.8,
        saturation=0.8,
        hue=0.2,
        grayscale_prob=0.2,
        blur_prob=0.5,
        blur_sigma=(0.1, 2.0),
        blur_kernel_size=23,  # 10% of 224 rounded up to odd
        solarize_prob=0.0,
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
    )


def _simclr_cifar() -> dict:
    """SimCLR CIFAR-10 (appendix B.9): 32x32, no blur, colour strength s = 0.5."""
    return _simclr() | dict(
        recipe="simclr_cifar",
        image_size=32,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.1,
        blur_prob=0.0,
        blur_kernel_size=3,
        mean=(0.4914, 0.4822, 0.4465),  # CIFAR-10 train-set statistics
        std=(0.2470, 0.2435, 0.2616),
    )


def _byol() -> dict:
    """BYOL view 1 (Grill et al. 2020, table 6); view 2 sets blur_prob 0.1, solarize_prob 0.2."""
    return _simclr() | dict(
        recipe="byol",
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        blur_prob=1.0,
        solarize_prob=0.0,
    )


def _digits() -> dict:
    """Reduced recipe for scikit-learn's 8x8 grayscale handwritten digits."""
    return _simclr() | dict(
        recipe="digits",
        image_size=16,  # 2x upsampled crops: the encoder sees more than 8x8 pixels
        crop_scale=(0.5, 1.0),  # at 8x8 a 0.08 crop keeps ~5 pixels, no longer a digit
        flip_prob=0.0,  # a mirrored 2, 3, 7 ... is not the same digit
        jitter_prob=0.8,
        brightness=0.4,  # strength s = 0.5 as for CIFAR; only intensity exists
        contrast=0.4,
        saturation=0.0,  # no colour: saturation, hue and grayscale are no-ops
        hue=0.0,
        grayscale_prob=0.0,
        blur_prob=0.5,
        blur_sigma=(0.1, 1.0),  # at most ~half an original pixel: strokes are 1-2 pixels wide
        blur_kernel_size=3,  # 10% of 16 rounded up to odd
        solarize_prob=0.0,
        mean=(0.3053,),  # pixel statistics of the 1,797 uint8 images scaled to [0, 1]
        std=(0.3759,),
    )


_RECIPES = {"simclr": _simclr, "simclr_cifar": _simclr_cifar, "byol": _byol, "digits": _digits}


def default_config(recipe: str) -> ml_collections.ConfigDict:
    """Returns the augmentation config of a named recipe."""
    if recipe not in _RECIPES:
        raise ValueError(f"unknown augmentation recipe {recipe!r}; valid: {sorted(_RECIPES)}")
    return ml_collections.ConfigDict(_RECIPES[recipe]())


def check_config(cfg: ml_collections.ConfigDict, channels: int) -> None:
    """Raises ValueError on a config that cannot produce views of `channels`-channel images."""
    for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
        if not 0.0 <= cfg[name] <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {cfg[name]}")
    if not 0.0 < cfg.crop_scale[0] <= cfg.crop_scale[1] <= 1.0:
        raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {cfg.crop_scale}")
    if not 0.0 < cfg.crop_ratio[0] <= cfg.crop_ratio[1]:
        raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {cfg.crop_ratio}")
    if cfg.image_size < 1 or cfg.blur_kernel_size < 1:
        raise ValueError("image_size and blur_kernel_size must be positive")
    if len(cfg.mean) != channels or len(cfg.std) != channels:
        raise ValueError(f"mean/std need {channels} values, got {cfg.mean} and {cfg.std}")


def normalize(x: Array, mean: tuple[float, ...], std: tuple[float, ...]) -> Array:
    """Per-channel (x - mean) / std over the last axis."""
    return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)


def _to_unit(images: Array) -> Array:
    """uint8 [0, 255] -> float32 [0, 1], refusing other dtypes before anything compiles."""
    if images.dtype != jnp.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    return images.astype(jnp.float32) / 255.0


def view(
    key: Array, image: Array, cfg: ml_collections.ConfigDict, hw: Array | None = None
) -> Array:
    """One random view: uint8 [H, W, C] -> normalized float32 [S, S, C].

    hw: the image's valid (height, width) when it is a padded canvas (batch[HW]).
    """
    check_config(cfg, image.shape[-1])
    k_crop, k_flip, k_jitter, k_gray, k_blur, k_sol = jax.random.split(key, 6)
    size = (cfg.image_size, cfg.image_size)
    x = aug.random_resized_crop(
        k_crop, _to_unit(image), size, tuple(cfg.crop_scale), tuple(cfg.crop_ratio), hw
    )
    # Ops with probability 0 are skipped at trace time: same result (exact identity), no compute.
    if cfg.flip_prob > 0:
        x = aug.horizontal_flip(k_flip, x, cfg.flip_prob)
    if cfg.jitter_prob > 0:
        x = aug.color_jitter(
            k_jitter,
            x,
            brightness=cfg.brightness,
            contrast=cfg.contrast,
            saturation=cfg.saturation,
            hue=cfg.hue,
            prob=cfg.jitter_prob,
        )
    if cfg.grayscale_prob > 0:
        x = aug.random_grayscale(k_gray, x, cfg.grayscale_prob)
    if cfg.blur_prob > 0:
        x = aug.gaussian_blur(
            k_blur,
            x,
            prob=cfg.blur_prob,
            sigma=tuple(cfg.blur_sigma),
            kernel_size=cfg.blur_kernel_size,
        )
    if cfg.solarize_prob > 0:
        x = aug.solarize(k_sol, x, prob=cfg.solarize_prob)
    return normalize(x, cfg.mean, cfg.std)


def batch_views(
    key: Array,
    images: Array,
    cfg: ml_collections.ConfigDict,
    num_views: int = 2,
    hw: Array | None = None,
) -> list[Array]:
    """`num_views` views of a uint8 [B, H, W, C] batch, one key per example and view.

    hw: int32 [B, 2] valid (height, width) of padded canvases (batch.get(HW)); crops are
    sampled inside it. None: the whole image is valid.
    """
    # Keys depend only on (key, view, example index), so any sharding of B gives the same views.
    keys = jax.random.split(key, (num_views, images.shape[0]))
    per_example = jax.vmap(lambda k, im, v: view(k, im, cfg, v))
    stacked = jax.vmap(per_example, in_axes=(0, None, None))(keys, images, hw)  # hw may be None
    return [stacked[i] for i in range(num_views)]


def with_overrides(cfg: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
    """A copy of a recipe with some keys replaced (BYOL's view 2, DINO's local crops)."""
    out = cfg.copy_and_resolve_references()
    out.update(dict(overrides))
    return out


def multi_crop(
    key: Array,
    images: Array,
    global_cfgs: list[ml_collections.ConfigDict],
    local_cfg: ml_collections.ConfigDict,
    num_local: int,
    hw: Array | None = None,
) -> tuple[list[Array], list[Array]]:
    """Multi-crop (SwAV / DINO): one global view per recipe of `global_cfgs`, `num_local` local.

    uint8 [B, H, W, C] -> (global views [B, S, S, C] each, local views [B, s, s, C] each);
    the two resolutions are separate arrays. Every (view, example) pair has its own key and,
    as in batch_views, keys depend only on (key, view, example index), not on the sharding.
    """
    keys = jax.random.split(key, (len(global_cfgs) + num_local, images.shape[0]))
    globals_ = [  # hw=None maps as an empty pytree: the whole image is valid
        jax.vmap(lambda k, im, v, c=c: view(k, im, c, v))(keys[i], images, hw)
        for i, c in enumerate(global_cfgs)
    ]
    if not num_local:
        return globals_, []
    per_example = jax.vmap(lambda k, im, v: view(k, im, local_cfg, v))
    stacked = jax.vmap(per_example, in_axes=(0, None, None))(keys[len(global_cfgs) :], images, hw)
    return globals_, [stacked[i] for i in range(num_local)]


def eval_view(images: Array, cfg: ml_collections.ConfigDict, hw: Array | None = None) -> Array:
    """Deterministic evaluation transform of uint8 [B, H, W, C] to S x S: a bilinear resize,
    or with hw (padded canvases, batch.get(HW)) the centred square of each valid region."""
    check_config(cfg, images.shape[-1])
    b, _, _, c = images.shape
    if hw is None:
        x = jax.image.resize(_to_unit(images), (b, cfg.image_size, cfg.image_size, c), "linear")
    else:
        x = jax.vmap(lambda im, v: aug.centre_square(im, v, cfg.image_size))(_to_unit(images), hw)
    return normalize(jnp.clip(x, 0.0, 1.0), cfg.mean, cfg.std)
