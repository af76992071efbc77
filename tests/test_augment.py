"""Tests of the on-device augmentations: shapes, determinism, identities, reference values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxssl.augment import image as aug
from jaxssl.augment import views

KEYS = jax.random.split(jax.random.key(0), 16)
OTHER_KEYS = jax.random.split(jax.random.key(1), 16)
JITTER = dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
NO_JITTER = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)


def _rgb(shape=(16, 16, 3), lo=0.0, hi=1.0, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(np.float32)


def _batched(op):
    """jit(vmap(op)) over keys with a shared image: one compile per op."""
    return jax.jit(jax.vmap(op, in_axes=(0, None)))


# name -> (op with the given prob, output spatial shape)
OPS = {
    "crop": (lambda p: lambda k, x: aug.random_resized_crop(k, x, (12, 10)), (12, 10)),
    "flip": (lambda p: lambda k, x: aug.horizontal_flip(k, x, p), (16, 16)),
    "jitter": (lambda p: lambda k, x: aug.color_jitter(k, x, **JITTER, prob=p), (16, 16)),
    "gray": (lambda p: lambda k, x: aug.random_grayscale(k, x, p), (16, 16)),
    "blur": (lambda p: lambda k, x: aug.gaussian_blur(k, x, prob=p, kernel_size=5), (16, 16)),
    "solarize": (lambda p: lambda k, x: aug.solarize(k, x, prob=p), (16, 16)),
}


@pytest.mark.parametrize("name", OPS)
def test_op_shape_range_and_keys(name):
    make, hw = OPS[name]
    fn = _batched(make(0.5))
    x = _rgb()
    out = np.asarray(fn(KEYS, x))
    assert out.shape == (16, *hw, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out, fn(KEYS, x))  # same keys, same result
    assert not np.array_equal(out, fn(OTHER_KEYS, x))  # other keys, other result
    assert any(not np.array_equal(out[0], o) for o in out[1:])  # per-example randomness


@pytest.mark.parametrize("name", [n for n in OPS if n != "crop"])
def test_prob_zero_is_identity(name):
    x = _rgb()
    out = _batched(OPS[name][0](0.0))(KEYS[:2], x)
    np.testing.assert_array_equal(out, np.broadcast_to(x, out.shape))


def test_full_crop_is_identity():
    x = _rgb()
    out = aug.random_resized_crop(KEYS[0], x, (16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_crop_box_in_range():
    box = jax.vmap(lambda k: aug.sample_crop_box(k, 16, 16, (0.2, 0.9), (0.5, 2.0)))(KEYS)
    top, left, h, w = (np.asarray(b) for b in box)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 16 + 1e-4).all() and (left + w <= 16 + 1e-4).all()
    np.testing.assert_array_less(0.2 - 1e-5, h * w / 256)
    np.testing.assert_array_less(h * w / 256, 0.9 + 1e-5)
    assert ((w / h >= 0.5 - 1e-5) & (w / h <= 2.0 + 1e-5)).all()


def test_crop_of_ramp_is_ramp_with_box_endpoints():
    # Channel 0 ramps along x, channel 1 along y; upsampling 16 -> 32 is exact linear interp.
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32)
    x = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 0.5), -1).astype(np.float32)
    crop = jax.jit(jax.vmap(lambda k: aug.random_resized_crop(k, x, (32, 32), (0.1, 0.6))))
    box = jax.vmap(lambda k: aug.sample_crop_box(k, 16, 16, (0.1, 0.6)))(KEYS[:4])
    centers = np.arange(32) + 0.5
    for out, top, left, h, w in zip(np.asarray(crop(KEYS[:4])), *box, strict=True):
        want_x = np.clip((left + centers * w / 32 - 0.5) / 15, 0, 1)
        want_y = np.clip((top + centers * h / 32 - 0.5) / 15, 0, 1)
        np.testing.assert_allclose(out[0, :, 0], want_x, atol=1e-5)
        np.testing.assert_allclose(out[:, 0, 1], want_y, atol=1e-5)
        np.testing.assert_allclose(out[..., 2], 0.5, atol=1e-6)


def test_flip_matches_numpy():
    x = _rgb((8, 8, 3))
    np.testing.assert_array_equal(aug.horizontal_flip(KEYS[0], x, 1.0), x[:, ::-1])


def test_solarize_matches_numpy():
    x = _rgb((8, 8, 3))
    out = aug.solarize(KEYS[0], x, prob=1.0, threshold=0.5)
    np.testing.assert_allclose(out, np.where(x < 0.5, x, 1.0 - x))


def test_grayscale_is_itu_r_601_luma():
    x = _rgb((8, 8, 3))
    luma = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    out = np.asarray(aug.random_grayscale(KEYS[0], x, 1.0))
    np.testing.assert_allclose(out, np.repeat(luma[..., None], 3, -1), atol=1e-3)


def test_one_channel_colour_ops_are_noops():
    x = _rgb((8, 8, 1))
    np.testing.assert_array_equal(aug.random_grayscale(KEYS[0], x, 1.0), x)
    out = aug.color_jitter(KEYS[0], x, brightness=0, contrast=0, saturation=0.8, hue=0.2, prob=1)
    np.testing.assert_allclose(out, x, atol=1e-6)


def _jitter_all(x, **strengths):
    kw = NO_JITTER | strengths
    return np.asarray(jax.jit(jax.vmap(lambda k: aug.color_jitter(k, x, **kw, prob=1.0)))(KEYS[:4]))


def test_brightness_adds_a_constant():
    x = _rgb((8, 8, 3), 0.35, 0.65)
    for out in _jitter_all(x, brightness=0.3):
        delta = out - x
        np.testing.assert_allclose(delta, delta.mean(), atol=1e-5)
        assert abs(delta.mean()) <= 0.3 + 1e-6


def test_contrast_scales_about_channel_mean():
    x = _rgb((8, 8, 3), 0.4, 0.6)
    mean = x.mean((0, 1))
    for out in _jitter_all(x, contrast=0.5):
        np.testing.assert_allclose(out.mean((0, 1)), mean, atol=1e-5)
        factor = (out - mean)[0, 0, 0] / (x - mean)[0, 0, 0]
        assert 0.5 - 1e-4 <= factor <= 1.5 + 1e-4
        np.testing.assert_allclose(out - mean, factor * (x - mean), atol=1e-5)


def test_saturation_and_hue_keep_gray_and_value():
    gray = np.repeat(_rgb((8, 8, 1)), 3, -1)
    np.testing.assert_allclose(_jitter_all(gray, saturation=0.8, hue=0.2)[0], gray, atol=1e-5)
    x = _rgb((8, 8, 3))
    for out in _jitter_all(x, hue=0.2):  # a hue shift keeps each pixel's max and min channel
        np.testing.assert_allclose(out.max(-1), x.max(-1), atol=1e-5)
        np.testing.assert_allclose(out.min(-1), x.min(-1), atol=1e-5)


def test_blur_constant_periodic_and_reference():
    blur = jax.jit(lambda k, x, s: aug.gaussian_blur(k, x, prob=1.0, sigma=s, kernel_size=5))
    np.testing.assert_allclose(
        blur(KEYS[0], np.full((16, 16, 3), 0.3, np.float32), (0.1, 2.0)), 0.3, atol=1e-6
    )
    wave = 0.5 + 0.4 * np.sin(2 * np.pi * np.arange(16) / 8)
    periodic = np.broadcast_to(wave[None, :, None], (16, 16, 3)).astype(np.float32)
    out = np.asarray(blur(KEYS[0], periodic, (1.0, 2.0)))
    assert abs(out.mean() - periodic.mean()) < 1e-2 and out.std() < periodic.std()
    # Independent numpy reference at sigma 1: separable, reflect-padded 5-tap Gaussian.
    x = _rgb()
    taps = np.exp(-(np.arange(-2, 3) ** 2) / 2.0)
    ref = np.pad(x, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    ref = sum(t * ref[i : i + 16] for i, t in enumerate(taps / taps.sum()))
    ref = sum(t * ref[:, i : i + 16] for i, t in enumerate(taps / taps.sum()))
    np.testing.assert_allclose(blur(KEYS[0], x, (1.0, 1.0)), ref, atol=1e-5)


def test_blur_kernel_too_large_raises():
    with pytest.raises(ValueError, match="too large"):
        aug.gaussian_blur(KEYS[0], _rgb((4, 4, 3)), prob=1.0, kernel_size=9)


# ---------------------------------------------------------------- recipes and batched views


def _rgb_cfg():
    """Every op enabled, sized for tiny test images."""
    cfg = views.default_config("simclr_cifar")
    cfg.image_size, cfg.blur_prob, cfg.blur_kernel_size, cfg.solarize_prob = 16, 0.5, 3, 0.2
    return cfg


def _uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# The papers' numbers, written out from their text: SimCLR appendix A (colour strength s: 0.8s
# brightness/contrast/saturation, 0.2s hue, jitter p 0.8, grayscale p 0.2, blur p 0.5 with
# sigma in [0.1, 2.0] and a kernel of 10% of the image side) and B.9 (CIFAR: s = 0.5, no
# blur); BYOL table 6 view 1 (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, blur p 1).
_PAPERS = {
    "simclr": dict(jitter=(0.8, 0.8, 0.8, 0.2), blur_prob=0.5, size=224),
    "simclr_cifar": dict(jitter=(0.4, 0.4, 0.4, 0.1), blur_prob=0.0, size=32),
    "byol": dict(jitter=(0.4, 0.4, 0.2, 0.1), blur_prob=1.0, size=224),
}


@pytest.mark.parametrize("recipe", sorted(_PAPERS))
def test_recipes_are_the_papers(recipe):
    cfg, paper = views.default_config(recipe), _PAPERS[recipe]
    assert cfg.recipe == recipe and cfg.image_size == paper["size"]
    assert (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) == paper["jitter"]
    assert (cfg.jitter_prob, cfg.grayscale_prob, cfg.flip_prob) == (0.8, 0.2, 0.5)
    assert tuple(cfg.crop_scale) == (0.08, 1.0)
    np.testing.assert_allclose(cfg.crop_ratio, (3 / 4, 4 / 3))
    assert cfg.blur_prob == paper["blur_prob"] and tuple(cfg.blur_sigma) == (0.1, 2.0)
    if cfg.blur_prob:  # 10% of the side, rounded up to an odd size
        assert cfg.blur_kernel_size == 2 * math.ceil((0.1 * cfg.image_size - 1) / 2) + 1
    views.check_config(cfg, len(cfg.mean))


def test_digits_recipe_normalises_with_the_datasets_own_statistics():
    from sklearn.datasets import load_digits

    cfg = views.default_config("digits")
    # 0..16 intensities stored as uint8 (x * 255 / 16, rounded), then scaled to [0, 1].
    pixels = np.round(load_digits().images * 255.0 / 16.0) / 255.0
    np.testing.assert_allclose(cfg.mean, [pixels.mean()], atol=1e-4)
    np.testing.assert_allclose(cfg.std, [pixels.std()], atol=1e-4)
    # No mirrored digits, no colour ops on one channel; the kernel is 10% of 16, odd.
    assert cfg.flip_prob == 0 and cfg.saturation == cfg.hue == cfg.grayscale_prob == 0
    assert cfg.image_size == 16 and cfg.blur_kernel_size == 3


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="digits"):
        views.default_config("imagenet")
    cfg = views.default_config("digits")
    with pytest.raises(ValueError, match="mean/std"):
        views.batch_views(KEYS[0], _uint8((2, 8, 8, 3)), cfg)
    with pytest.raises(ValueError, match="uint8"):
        views.eval_view(np.zeros((2, 8, 8, 1), np.float32), cfg)


def _jit_views(cfg, num_views=2):
    return jax.jit(lambda k, x: views.batch_views(k, x, cfg, num_views))


@pytest.fixture(scope="module")
def rgb_views():
    images = _uint8((8, 16, 16, 3))
    fn = _jit_views(_rgb_cfg())
    return images, fn, fn(KEYS[0], images)


def test_batch_views_shapes_and_keys(rgb_views):
    images, fn, (v1, v2) = rgb_views
    cfg = _rgb_cfg()
    lo = (0 - np.array(cfg.mean)) / np.array(cfg.std)
    hi = (1 - np.array(cfg.mean)) / np.array(cfg.std)
    for v in (v1, v2):
        assert v.shape == (8, 16, 16, 3) and v.dtype == jnp.float32
        assert (np.asarray(v) >= lo - 1e-5).all() and (np.asarray(v) <= hi + 1e-5).all()
    assert not np.allclose(v1, v2)  # the two views differ
    np.testing.assert_array_equal(v1, fn(KEYS[0], images)[0])
    assert not np.allclose(v1, fn(KEYS[1], images)[0])


def test_batch_views_sharded_equals_unsharded(rgb_views):
    images, fn, unsharded = rgb_views
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(images, NamedSharding(mesh, P("data")))
    for want, got in zip(unsharded, fn(KEYS[0], sharded), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_batch_views_digits_and_identity():
    images = _uint8((4, 8, 8, 1))
    v1, v2 = _jit_views(views.default_config("digits"))(KEYS[0], images)
    assert v1.shape == (4, 16, 16, 1) and not np.allclose(v1, v2)
    cfg = views.default_config("digits")
    cfg.update(image_size=8, crop_scale=(1, 1), crop_ratio=(1, 1), mean=(0,), std=(1,))
    for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
        cfg[name] = 0.0
    (same,) = _jit_views(cfg, num_views=1)(KEYS[0], images)
    np.testing.assert_allclose(same, images / 255.0, atol=1e-6)


def test_eval_view():
    images = _uint8((2, 8, 8, 1))
    cfg = views.default_config("digits")
    out = views.eval_view(images, cfg)
    assert out.shape == (2, 16, 16, 1) and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, views.eval_view(images, cfg))
    cfg.image_size = 8
    want = views.normalize(images.astype(np.float32) / 255, cfg.mean, cfg.std)
    np.testing.assert_allclose(views.eval_view(images, cfg), want, atol=1e-5)
