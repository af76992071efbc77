"""Host-side image helpers shared by the dataset kinds: fixed-size resizes, file decoding."""

from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from jaxssl.data.tfds_io import DatasetError

# Modes PIL opens single-channel files in; anything else is decoded as RGB.
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")

# dataset.resize: how variable-size images become dataset.image_size squares on the host.
# "whole": the longer side to N, the whole image at the top-left of an N x N canvas and its
# valid (height, width) under HW, so on-device random crops sample from the whole original
# image (SimCLR, BYOL, DINO ...) and evaluation takes its centred square; "crop": the shorter
# side to N and the centre N x N (what the crops can see loses the longer side's borders).
RESIZE_MODES = ("whole", "crop")
DEFAULT_RESIZE = RESIZE_MODES[0]  # also base_config's dataset.resize
HW = "image_hw"  # batch key: int32 [2] valid (height, width) of a "whole" canvas


def resize_of(dataset_cfg: ml_collections.ConfigDict) -> str:
    """dataset.resize, checked: one of RESIZE_MODES (DEFAULT_RESIZE when the key is absent,
    as in a run saved before it existed)."""
    mode = dataset_cfg.get("resize", DEFAULT_RESIZE)
    if mode not in RESIZE_MODES:
        raise DatasetError(
            f"dataset.resize={mode!r}: use 'whole' (crops see the whole image) or 'crop'"
            " (shorter side + centre crop)"
        )
    return mode


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to size, then center-crop to size x size (uint8 HWC)."""
    h, w, _ = image.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    out = _resize(image, nh, nw)
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[top : top + size, left : left + size]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((width, height), Image.BICUBIC))
    return out[..., None] if out.ndim == 2 else out


def resize_whole(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The longer side to size (aspect kept) at the top-left of a size x size canvas.

    Returns (canvas uint8 [size, size, C], int32 [2] valid height and width). The canvas
    repeats the last row and column instead of black, so a resize that reads a pixel past
    the valid edge (antialiasing) sees the edge, as when resizing the original image.
    """
    h, w, _ = image.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = _resize(image, nh, nw)
    canvas = np.pad(out, ((0, size - nh), (0, size - nw), (0, 0)), mode="edge")
    return canvas, np.array([nh, nw], np.int32)


def fixed_size(image: np.ndarray, size: int | None, mode: str) -> dict[str, Any]:
    """{"image"} as stored (size None), or resized to size x size by `mode` (RESIZE_MODES):
    "whole" adds HW, the valid region, to every example (also to those already square)."""
    if size is None:
        return {"image": image}
    if mode == "whole":
        canvas, hw = resize_whole(image, size)
        return {"image": canvas, HW: hw}
    return {"image": resize_center_crop(image, size)}


def decode(path: str, channels: int, size: int | None, mode: str) -> dict[str, Any]:
    """A JPEG/PNG/... file as {"image": uint8 [H, W, channels]}, made size x size by `mode`
    (fixed_size) when size is set.

    Raises OSError (PIL's) for a file that is not a readable image.
    """
    with Image.open(path) as im:
        if size is not None and im.format == "JPEG":
            im.draft("L" if channels == 1 else "RGB", (size, size))  # decode at >= size: faster
        array = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    if array.ndim == 2:
        array = array[..., None]
    return fixed_size(array, size, mode)
