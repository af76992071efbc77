"""dataset.resize="whole": random crops of variable-size images sample the whole original image.

A 40 x 80 (height x width) image whose pixel value encodes its column: which columns of the
original can the views ever show? Host "crop" (shorter side to N, centre N x N) keeps only
the middle half; host "whole" (longer side to N at the top-left of the canvas, with its valid
(height, width)) lets the on-device random-resized crop reach every column, and never past
the valid region.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxssl.augment import image as aug
from jaxssl.augment import views
from jaxssl.data import images

H, W, N = 40, 80, 32
COLUMN_STEP = 3  # pixel value = 3 * column: 0..237 within uint8


def _columns() -> np.ndarray:
    row = (np.arange(W) * COLUMN_STEP).astype(np.uint8)
    return np.broadcast_to(row[None, :, None], (H, W, 1)).copy()


def _crop_only_cfg():
    """The digits recipe without photometric ops: a view's pixel is a resampled pixel."""
    cfg = views.default_config("digits")
    return views.with_overrides(
        cfg,
        dict(image_size=16, crop_scale=(0.08, 1.0), jitter_prob=0.0, blur_prob=0.0),
    )


def test_whole_resize_keeps_the_image_and_says_where():
    canvas, hw = images.resize_whole(_columns(), N)
    assert canvas.shape == (N, N, 1) and hw.tolist() == [16, 32]  # 2:1 kept
    # Independent: PIL's own bicubic resize of the original to 32 x 16.
    want = np.asarray(Image.fromarray(_columns()[..., 0]).resize((32, 16), Image.BICUBIC))
    np.testing.assert_array_equal(canvas[:16, :, 0], want)
    # The rest repeats the last valid row (edge padding, not black).
    np.testing.assert_array_equal(canvas[16:], np.broadcast_to(canvas[15:16], (16, N, 1)))
    example = images.fixed_size(_columns(), N, "whole")
    assert sorted(example) == ["image", images.HW] and example[images.HW].dtype == np.int32
    assert sorted(images.fixed_size(_columns(), N, "crop")) == ["image"]


def test_crop_boxes_stay_inside_the_valid_region_and_cover_it():
    hw = jnp.array([16, 32], jnp.int32)
    keys = jax.random.split(jax.random.key(0), 2000)
    top, left, h, w = jax.vmap(lambda k: aug.sample_crop_box(k, hw[0], hw[1]))(keys)
    top, left, h, w = (np.asarray(a) for a in (top, left, h, w))
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 16 + 1e-4).all() and (left + w <= 32 + 1e-4).all()
    # Areas are fractions of the valid region (scale 0.08..1), not of the padded canvas; the
    # largest box of aspect <= 4/3 inside a 2:1 region is 16 x 21.3: 2/3 of it.
    area = h * w / (16 * 32)
    assert area.min() >= 0.08 - 1e-4 and area.max() <= 2 / 3 + 1e-4 and area.max() > 0.6
    assert left.min() < 0.5 and (left + w).max() > 31.5 and (top + h).max() > 15.5


def _seen_columns(mode: str) -> tuple[float, float]:
    """The lowest and highest original column any of 256 views shows, by pixel value."""
    example = images.fixed_size(_columns(), N, mode)
    batch = {k: np.repeat(v[None], 256, axis=0) for k, v in example.items()}
    cfg = _crop_only_cfg()
    (out,) = views.batch_views(
        jax.random.key(1), jnp.asarray(batch["image"]), cfg, 1, batch.get(views.HW)
    )
    pixels = np.asarray(out) * cfg.std[0] + cfg.mean[0]  # back to [0, 1]
    columns = pixels * 255.0 / COLUMN_STEP
    return float(columns.min()), float(columns.max())


@pytest.mark.parametrize("mode, lo, hi", [("whole", 0, W - 1), ("crop", W / 4, 3 * W / 4)])
def test_views_reach_the_borders_only_with_whole(mode, lo, hi):
    first, last = _seen_columns(mode)
    # whole: the views reach both borders (within resampling, 2 columns); crop: they cannot
    # leave the centre square, columns 20..60 of 80 (within the bicubic overshoot, 2).
    if mode == "whole":
        assert first <= lo + 2 and last >= hi - 2, (first, last)
    else:
        assert first >= lo - 2 and last <= hi + 2, (first, last)


def test_eval_view_is_the_centred_square_of_the_valid_region():
    canvas, hw = images.resize_whole(_columns(), N)
    cfg = _crop_only_cfg()
    got = views.eval_view(jnp.asarray(canvas[None]), cfg, jnp.asarray(hw[None]))
    # Independent: the centred 16 x 16 square of the 16 x 32 content, resized by jax.image.
    square = canvas[:16, 8:24].astype(np.float32) / 255.0
    want = jax.image.resize(square, (16, 16, 1), "linear")
    want = (np.clip(want, 0, 1) - cfg.mean[0]) / cfg.std[0]
    np.testing.assert_allclose(np.asarray(got[0]), want, atol=1e-5)


def test_multi_crop_samples_inside_the_valid_region_too():
    """DINO's multi-crop: hw covering the whole image changes nothing (exact), and on a
    whole-resized 2:1 image global and local crops both reach its side borders."""
    cfg = _crop_only_cfg()
    local = views.with_overrides(cfg, dict(image_size=8, crop_scale=(0.05, 0.4)))
    example = images.fixed_size(_columns(), N, "whole")
    x = jnp.asarray(np.repeat(example["image"][None], 128, axis=0))
    key = jax.random.key(2)
    full = jnp.full((128, 2), N, jnp.int32)
    plain = views.multi_crop(key, x, [cfg, cfg], local, 2)
    same = views.multi_crop(key, x, [cfg, cfg], local, 2, full)
    for a, b in zip(plain[0] + plain[1], same[0] + same[1], strict=True):
        np.testing.assert_array_equal(a, b)
    hw = jnp.asarray(np.repeat(example[images.HW][None], 128, axis=0))
    globals_, locals_ = views.multi_crop(key, x, [cfg, cfg], local, 2, hw)
    for group in (globals_, locals_):
        columns = (np.stack(group) * cfg.std[0] + cfg.mean[0]) * 255.0 / COLUMN_STEP
        assert columns.min() <= 2 and columns.max() >= W - 3, (columns.min(), columns.max())
