"""Per-example image augmentations: pure, jit/vmap-friendly, on float32 HWC images in [0, 1].

Every op takes a PRNG key first and has static output shapes, so a batch is one `jax.vmap`
with one key per example. Probability gates are `jnp.where` selects, never `lax.cond`: under
vmap a cond runs both branches anyway, so a select of the two results is as cheap and simpler.
"""

import math

import dm_pix as pix
import jax
import jax.numpy as jnp

Array = jax.Array

_CROP_ATTEMPTS = 10  # torchvision/Inception try 10 boxes before falling back to a centre crop


def _gate(key: Array, prob: float, result: Array, image: Array) -> Array:
    """Returns `result` with probability `prob`, else `image` unchanged (exact identity)."""
    return jnp.where(jax.random.uniform(key) < prob, result, image)


def sample_crop_box(
    key: Array,
    height: int | Array,
    width: int | Array,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[Array, Array, Array, Array]:
    """Samples an Inception-style crop box (top, left, box_height, box_width) in pixels.

    height and width may be traced (a per-example valid region inside a padded canvas).
    """
    height, width = jnp.asarray(height, jnp.float32), jnp.asarray(width, jnp.float32)
    k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
    area = jax.random.uniform(k_area, (_CROP_ATTEMPTS,), minval=scale[0], maxval=scale[1])
    area = area * (height * width)
    log_ratio = jax.random.uniform(
        k_ratio, (_CROP_ATTEMPTS,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])
    )
    aspect = jnp.exp(log_ratio)
    box_w = jnp.sqrt(area * aspect)
    box_h = jnp.sqrt(area / aspect)
    # Small tolerance so scale=(1, 1), ratio=(1, 1) on a square image is accepted despite rounding.
    fits = (box_w <= width * (1 + 1e-5)) & (box_h <= height * (1 + 1e-5))
    first = jnp.argmax(fits)
    # Fallback as torchvision: the whole image, its aspect ratio clipped into the ratio range.
    in_ratio = width / height
    fb_w = jnp.where(in_ratio > ratio[1], height * ratio[1], width)
    fb_h = jnp.where(in_ratio < ratio[0], width / ratio[0], height)
    box_h = jnp.minimum(jnp.where(fits.any(), box_h[first], fb_h), height)
    box_w = jnp.minimum(jnp.where(fits.any(), box_w[first], fb_w), width)
    top = jax.random.uniform(k_top) * (height - box_h)
    left = jax.random.uniform(k_left) * (width - box_w)
    return top, left, box_h, box_w


def crop_resize(image: Array, box: tuple[Array, ...], size: tuple[int, int]) -> Array:
    """The (top, left, height, width) box of an HWC image, resized to `size` (traced box)."""
    top, left, box_h, box_w = box
    # scale_and_translate takes a traced box (no dynamic shapes) and antialiases when shrinking,
    # like torchvision's resize; its cost is two small dense matmuls per example.
    sy, sx = size[0] / box_h, size[1] / box_w
    out = jax.image.scale_and_translate(
        image,
        (size[0], size[1], image.shape[-1]),
        spatial_dims=(0, 1),
        scale=jnp.stack([sy, sx]),
        translation=jnp.stack([-top * sy, -left * sx]),
        method="linear",
        antialias=True,
    )
    return jnp.clip(out, 0.0, 1.0)


def random_resized_crop(
    key: Array,
    image: Array,
    size: tuple[int, int],
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hw: Array | None = None,
) -> Array:
    """Crops a random box (area fraction `scale`, log-uniform aspect `ratio`), resizes to `size`.

    hw: the (height, width) of the image's valid top-left region when the image is a padded
    canvas (dataset.resize="whole"): the box is sampled inside it, as from the original image.
    """
    height, width = (image.shape[0], image.shape[1]) if hw is None else (hw[0], hw[1])
    return crop_resize(image, sample_crop_box(key, height, width, scale, ratio), size)


def centre_square(image: Array, hw: Array, size: int) -> Array:
    """The largest centred square of the valid (height, width) region, resized to size x size:
    the evaluation view of a padded canvas (resize shorter side + centre crop, in one resize)."""
    height, width = jnp.asarray(hw[0], jnp.float32), jnp.asarray(hw[1], jnp.float32)
    side = jnp.minimum(height, width)
    box = ((height - side) / 2, (width - side) / 2, side, side)
    return crop_resize(image, box, (size, size))


def horizontal_flip(key: Array, image: Array, prob: float = 0.5) -> Array:
    """Mirrors the image left-right with probability `prob`."""
    return _gate(key, prob, pix.flip_left_right(image), image)


def _jitter_stage(x: Array, op: Array, factors: tuple[Array, Array, Array, Array]) -> Array:
    """Applies op 0 brightness, 1 contrast, 2 saturation or 3 hue to `x`, then clips."""
    b, c, s, h = factors
    affine = jnp.where(op == 0, pix.adjust_brightness(x, b), pix.adjust_contrast(x, c))
    if x.shape[-1] != 3:  # saturation and hue are undefined without colour: identity
        return jnp.clip(jnp.where(op < 2, affine, x), 0.0, 1.0)
    # Saturation and hue share one HSV round trip: each stage pays for one, not two.
    hue, sat, val = jnp.moveaxis(pix.rgb_to_hsv(x), -1, 0)
    hue = jnp.where(op == 3, (hue + h) % 1.0, hue)
    sat = jnp.where(op == 2, jnp.clip(sat * s, 0.0, 1.0), sat)
    hsv = pix.hsv_to_rgb(jnp.stack([hue, sat, val], axis=-1))
    return jnp.clip(jnp.where(op < 2, affine, hsv), 0.0, 1.0)


def color_jitter(
    key: Array,
    image: Array,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    prob: float,
    random_order: bool = True,
) -> Array:
    """SimCLR colour jitter: additive brightness, contrast/saturation factors, hue shift."""
    k_apply, k_b, k_c, k_s, k_h, k_order = jax.random.split(key, 6)
    # Ranges as SimCLR v1 (tf.image.random_*): brightness delta, factors 1 +- strength, hue delta.
    b = jax.random.uniform(k_b, minval=-brightness, maxval=brightness)
    c = jax.random.uniform(k_c, minval=max(0.0, 1 - contrast), maxval=1 + contrast)
    s = jax.random.uniform(k_s, minval=max(0.0, 1 - saturation), maxval=1 + saturation)
    h = jax.random.uniform(k_h, minval=-hue, maxval=hue)
    # Random order per example as in the paper: each stage selects among the candidate ops.
    order = jax.random.permutation(k_order, 4) if random_order else jnp.arange(4)
    x = image
    for i in range(4):
        x = _jitter_stage(x, order[i], (b, c, s, h))
    return _gate(k_apply, prob, x, image)


def random_grayscale(key: Array, image: Array, prob: float) -> Array:
    """Replaces RGB by its ITU-R 601 luma on all channels with probability `prob`."""
    if image.shape[-1] != 3:
        return image
    return _gate(key, prob, pix.rgb_to_grayscale(image, keep_dims=True), image)


def _blur_axis(x: Array, taps: Array, axis: int) -> Array:
    """Convolves `x` along `axis` with odd-length `taps`, reflect-padded to keep the size."""
    radius, size = taps.shape[0] // 2, x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    # Reflect padding (as torchvision), not zero padding, so edges do not darken.
    padded = jnp.pad(x, pad, mode="reflect")
    return sum(
        taps[i] * jax.lax.slice_in_dim(padded, i, i + size, axis=axis) for i in range(len(taps))
    )


def gaussian_blur(
    key: Array,
    image: Array,
    *,
    prob: float,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int,
) -> Array:
    """Separable Gaussian blur, sigma uniform in `sigma` per example, reflect-padded edges."""
    k_apply, k_sigma = jax.random.split(key)
    radius = kernel_size // 2  # even sizes round up to 2 * radius + 1, as in dm-pix
    if radius >= min(image.shape[:2]):
        raise ValueError(f"blur kernel_size {kernel_size} too large for image {image.shape}")
    std = jax.random.uniform(k_sigma, minval=sigma[0], maxval=sigma[1])
    offsets = jnp.arange(-radius, radius + 1, dtype=image.dtype)
    taps = jnp.exp(-(offsets**2) / (2 * std**2))
    taps = taps / taps.sum()
    # Shifted-slice sums, not dm-pix's depthwise conv: with a per-example sigma under vmap the
    # conv becomes a grouped conv, 8x slower on CPU; the sums fuse into one elementwise loop.
    blurred = _blur_axis(_blur_axis(image, taps, 0), taps, 1)
    return _gate(k_apply, prob, jnp.clip(blurred, 0.0, 1.0), image)


def solarize(key: Array, image: Array, *, prob: float, threshold: float = 0.5) -> Array:
    """Inverts pixels at or above `threshold` with probability `prob`."""
    return _gate(key, prob, pix.solarize(image, threshold), image)
