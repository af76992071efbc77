"""Host-side image helpers shared by the dataset kinds: resize + centre crop, file decoding."""

import numpy as np
from PIL import Image

# Modes PIL opens single-channel files in; anything else is decoded as RGB.
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def resize_center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to size, then center-crop to size x size (uint8 HWC)."""
    h, w, c = image.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    out = np.asarray(pil.resize((nw, nh), Image.BICUBIC))
    top, left = (nh - size) // 2, (nw - size) // 2
    out = out[top : top + size, left : left + size]
    return out[..., None] if out.ndim == 2 else out


def decode(path: str, channels: int, size: int | None) -> np.ndarray:
    """A JPEG/PNG/... file as uint8 [H, W, channels]; resized + centre-cropped when size is set.

    Raises OSError (PIL's) for a file that is not a readable image.
    """
    with Image.open(path) as im:
        if size is not None and im.format == "JPEG":
            im.draft("L" if channels == 1 else "RGB", (size, size))  # decode at >= size: faster
        array = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    if array.ndim == 2:
        array = array[..., None]
    if size is None or array.shape[:2] == (size, size):
        return array
    return resize_center_crop(array, size)
