"""The dataset registry, keyed by dataset.name: digits, tfds names, npz:, folder:, text kinds."""

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import ml_collections
import numpy as np

from jaxssl.data import corpora, folder, text
from jaxssl.data.digits import digits_builder, prepare_digits
from jaxssl.data.images import DEFAULT_RESIZE, fixed_size, resize_center_crop, resize_of
from jaxssl.data.tfds_io import DatasetError, data_dir_of, tfds_builder, tfds_source

NPZ_PREFIX = "npz:"
NPZ_HOLDOUT_SEED = 0
__all__ = ["resize_center_crop"]  # re-exported: it lives in data/images.py

# Each kind of dataset.name, for `jaxssl list` and error messages.
KINDS = {
    "digits": "scikit-learn's 1,797 8x8 handwritten digits, embedded (no download)",
    "pydoc": "CPython's bundled English documentation, embedded (text)",
    "npz:FILE": "your arrays: image uint8 NHWC + label (+ test_image / test_label)",
    "folder:DIR": "your JPEG/PNG files: DIR/train/CLASS/, DIR/val/CLASS/ (or DIR/CLASS/, DIR/)",
    "text:FILE": "any UTF-8 text file (first 90% train, last 10% validation)",
    "corpora:NAME=FILE,...": "which corpus a text window comes from (labelled text)",
    "TFDS_NAME": "any tfds dataset prepared as ArrayRecord (cifar10, imagenet2012, ...)",
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What config validation needs to know about a dataset, without reading it all."""

    name: str
    num_classes: int | None  # None: no labels (text corpora)
    image_shape: tuple[int, int, int] | None  # None: not images (text)
    split_sizes: Mapping[str, int]  # {"train": n, "test": m}, for the configured splits
    seq_len: int | None = None  # text: tokens per record
    vocab_size: int | None = None  # text: the tokenizer's vocabulary


# Splits whose decoded examples fit in this many bytes (digits, CIFAR-10's 150 MB) are decoded
# once: tfds parses every read again (0.1 ms an example), which took a quarter of the digits
# step's time on a 2-core host; bigger splits (ImageNet) are read through every epoch.
CACHE_BYTES = 1 << 30


class ExampleSource:
    """Wraps a source of feature dicts; yields {"image": uint8 HWC, "label": int}, plus
    images.HW when image_size is set with resize "whole" (images.fixed_size). Examples are
    kept after their first read when len * (the first example's bytes) <= cache_bytes."""

    def __init__(
        self,
        source: Any,
        name: str,
        image_size: int | None = None,
        resize: str = DEFAULT_RESIZE,
        cache_bytes: int | None = None,  # None: CACHE_BYTES as it is when the source is made
    ):
        self._source, self._name, self._image_size = source, name, image_size
        self._resize = resize
        self._cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
        self._cache: list[dict[str, Any] | None] | None = None

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        cache = self._cache
        if cache and (kept := cache[index]) is not None:
            return dict(kept)  # a new dict: a caller that edits it leaves the kept one alone
        example = self._decode(index)
        if cache is None and self._cache_bytes:
            split_bytes = len(self) * sum(np.asarray(v).nbytes for v in example.values())
            # Threads may race here; a lost list only costs its reads again.
            cache = self._cache = [None] * len(self) if split_bytes <= self._cache_bytes else []
            self._cache_bytes = 0  # decided
        if cache:
            for value in example.values():  # kept arrays are shared: an in-place edit is refused
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False
            cache[index] = example
        return dict(example)

    def _decode(self, index: int) -> dict[str, Any]:
        ex = self._source[index]
        image = np.asarray(ex["image"])
        if image.ndim == 2:  # grayscale without a channel axis
            image = image[..., None]
        if image.dtype != np.uint8:
            raise DatasetError(f"{self._name}: images must be uint8, got {image.dtype}")
        return fixed_size(image, self._image_size, self._resize) | {"label": int(ex["label"])}

    def __repr__(self) -> str:
        return f"ExampleSource({self._name}, n={len(self)})"


class ArraySource:
    """In-memory images and labels, viewed through an index array (no copies)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, index: np.ndarray, name: str):
        self._images, self._labels, self._index, self._name = images, labels, index, name

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self._index[index]
        return {"image": self._images[i], "label": int(self._labels[i])}

    def __repr__(self) -> str:
        return f"ArraySource({self._name}, n={len(self)})"


def _check_npz_pair(images: np.ndarray, labels: np.ndarray, what: str, path: str) -> np.ndarray:
    """Validate one image/label pair; return images as NHWC."""
    fix = f"re-save {path} with np.savez"
    if images.dtype != np.uint8:
        raise DatasetError(
            f"{path}: '{what}image' has dtype {images.dtype}, expected uint8: {fix} and"
            f" images.astype(np.uint8) (scale floats in [0, 1] by 255 first)"
        )
    if images.ndim not in (3, 4):
        raise DatasetError(
            f"{path}: '{what}image' has shape {images.shape}, expected NHW or NHWC: {fix}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"{path}: '{what}label' must be a 1-D integer array, got {labels.dtype}"
            f" {labels.shape}: {fix}"
        )
    if len(images) != len(labels) or len(images) == 0:
        raise DatasetError(
            f"{path}: '{what}image' has {len(images)} rows but '{what}label' has {len(labels)}:"
            f" {fix} with one label per image (and at least one image)"
        )
    if labels.min() < 0:
        raise DatasetError(f"{path}: '{what}label' has negative values; use class ids 0..K-1")
    return images if images.ndim == 4 else images[..., None]


@functools.lru_cache(maxsize=2)
def _read_npz(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
    """Load and validate an npz file; mtime_ns in the key re-reads a changed file."""
    del mtime_ns
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e}); save it with np.savez") from e
    missing = {"image", "label"} - arrays.keys()
    if missing or (("test_image" in arrays) != ("test_label" in arrays)):
        raise DatasetError(
            f"{path}: has keys {sorted(arrays)}, needs 'image' and 'label' (plus optionally both"
            " 'test_image' and 'test_label'): re-save it with np.savez(path, image=..., label=...)"
        )
    arrays["image"] = _check_npz_pair(arrays["image"], arrays["label"], "", path)
    if "test_image" in arrays:
        arrays["test_image"] = _check_npz_pair(
            arrays["test_image"], arrays["test_label"], "test_", path
        )
        if arrays["test_image"].shape[1:] != arrays["image"].shape[1:]:
            raise DatasetError(
                f"{path}: 'test_image' rows are {arrays['test_image'].shape[1:]} but 'image'"
                f" rows are {arrays['image'].shape[1:]}: both splits need one image shape"
            )
    elif len(arrays["image"]) < 2:
        raise DatasetError(f"{path}: needs at least 2 images to hold out a test split")
    return arrays


def _npz_arrays(name: str) -> tuple[str, dict[str, np.ndarray]]:
    path = os.path.expanduser(name[len(NPZ_PREFIX) :])
    if not os.path.isfile(path):
        raise DatasetError(
            f"npz file not found: {path!r}; set dataset.name to 'npz:/absolute/path/file.npz'"
        )
    return path, _read_npz(path, os.stat(path).st_mtime_ns)


def npz_holdout(n: int) -> dict[str, np.ndarray]:
    """Sorted train/test indices when an npz has no test arrays: a fixed 10% (at least 1)."""
    perm = np.random.default_rng(NPZ_HOLDOUT_SEED).permutation(n)
    n_test = max(1, n // 10)
    return {"train": np.sort(perm[n_test:]), "test": np.sort(perm[:n_test])}


def _npz_source(name: str, split: str) -> ArraySource:
    path, arrays = _npz_arrays(name)
    if split not in ("train", "test"):
        raise DatasetError(f"{path}: npz datasets have splits 'train' and 'test', not '{split}'")
    if "test_image" in arrays:
        key = "test_" if split == "test" else ""
        images, labels = arrays[f"{key}image"], arrays[f"{key}label"]
        return ArraySource(images, labels, np.arange(len(images)), f"{path}:{split}")
    index = npz_holdout(len(arrays["image"]))[split]
    return ArraySource(arrays["image"], arrays["label"], index, f"{path}:{split}")


def get_source(dataset_cfg: ml_collections.ConfigDict, split: str) -> Any:
    """A random-access source (len, [i] -> {"image": uint8 HWC, "label": int}) for one split."""
    name = dataset_cfg.name
    if corpora.is_corpora(dataset_cfg):  # labelled: which corpus a window comes from
        return corpora.get_source(dataset_cfg, split)
    if text.is_text(dataset_cfg):  # {"tokens", "attention_mask"} records: see data/text.py
        return text.get_text_source(dataset_cfg, split)
    if name.startswith(NPZ_PREFIX):
        return _npz_source(name, split)
    if folder.is_folder(dataset_cfg):
        return folder.get_source(dataset_cfg, split)
    data_dir = data_dir_of(dataset_cfg)
    if name == "digits":
        prepare_digits(data_dir)
        return ExampleSource(digits_builder(data_dir).as_data_source(split=split), "digits")
    source = tfds_source(name, split, data_dir)
    return ExampleSource(
        source, f"{name}:{split}", dataset_cfg.get("image_size"), resize_of(dataset_cfg)
    )


def _splits(dataset_cfg: ml_collections.ConfigDict) -> dict[str, int]:
    train, test = dataset_cfg.get("train_split", "train"), dataset_cfg.get("test_split", "test")
    return {k: len(get_source(dataset_cfg, s)) for k, s in (("train", train), ("test", test))}


def dataset_info(dataset_cfg: ml_collections.ConfigDict) -> DatasetInfo:
    """Classes, image shape (H, W, C) and split sizes, read from metadata only."""
    name = dataset_cfg.name
    if text.is_text(dataset_cfg):
        return DatasetInfo(
            name,
            corpora.num_classes(dataset_cfg)
            if corpora.is_corpora(dataset_cfg)
            else text.num_classes(dataset_cfg),
            None,
            _splits(dataset_cfg),
            seq_len=text.seq_len_of(dataset_cfg),
            vocab_size=text.tokenizer_of(dataset_cfg).vocab_size,
        )
    if name.startswith(NPZ_PREFIX):
        _, arrays = _npz_arrays(name)
        labels = [arrays["label"], arrays.get("test_label", arrays["label"])]
        num_classes = int(max(int(x.max()) for x in labels)) + 1
        shape = tuple(int(d) for d in arrays["image"].shape[1:])
        return DatasetInfo(name, num_classes, shape, _splits(dataset_cfg))
    if name == "digits":
        return DatasetInfo(name, 10, (8, 8, 1), _splits(dataset_cfg))
    if folder.is_folder(dataset_cfg):
        shape = folder.image_shape(dataset_cfg)
        classes = folder.num_classes(dataset_cfg)
        found = folder.scan(dataset_cfg)
        sizes = {
            "train": len(folder.split_of(found, dataset_cfg.get("train_split", "train")).paths)
        }
        # A flat folder (no labels) has no test split: evaluation is skipped, not an error.
        test = dataset_cfg.get("test_split", "test")
        sizes["test"] = len(folder.split_of(found, test).paths) if classes else 0
        return DatasetInfo(name, classes, shape, sizes)
    features = tfds_builder(name, data_dir_of(dataset_cfg)).info.features
    if "image" not in features or "label" not in features:
        raise DatasetError(f"tfds dataset '{name}' needs 'image' and 'label' features")
    num_classes = getattr(features["label"], "num_classes", None)
    if num_classes is None:
        raise DatasetError(f"tfds dataset '{name}': 'label' is not a ClassLabel feature")
    h, w, c = features["image"].shape
    size = dataset_cfg.get("image_size")
    if size is not None:
        h = w = int(size)
    elif h is None or w is None:
        raise DatasetError(
            f"tfds dataset '{name}' has variable image sizes: set dataset.image_size=N to"
            " resize every image to N x N on the host (dataset.resize: whole or crop)"
        )
    splits = _splits(dataset_cfg)
    return DatasetInfo(name, int(num_classes), (int(h), int(w), int(c or 1)), splits)


def _check_text_file(dataset_cfg: ml_collections.ConfigDict) -> None:
    """An empty text file, or one too short to give both splits text, is named as such."""
    path = os.path.expanduser(dataset_cfg.name[len(text.TEXT_PREFIX) :])
    if not os.path.isfile(path):
        raise DatasetError(
            f"text file not found: {path!r} (from {os.getcwd()}); set dataset.name to"
            " 'text:/path/file.txt'"
        )
    rule = "text:FILE trains on the first 90% of its characters and validates on the last 10%"
    if os.path.getsize(path) == 0:
        raise DatasetError(f"text file {path!r} is empty: {rule}; point it at a file with text")
    splits = text.file_splits(path)
    for split, part in (("train", "first 90%"), ("validation", "last 10%")):
        chars = splits[split]
        if not chars.strip():
            raise DatasetError(
                f"text file {path!r} is too short: its {part} ({split} split) is blank"
                f" ({len(chars)} characters); {rule}: use a longer file"
            )


def check_dataset(dataset_cfg: ml_collections.ConfigDict) -> None:
    """Raise DatasetError (a ValueError, one line) if the dataset cannot be read as configured."""
    resize_of(dataset_cfg)
    workers = dataset_cfg.get("num_workers", 0)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise DatasetError(
            f"dataset.num_workers={workers!r} must be an integer >= 0 (0: read threads only)"
        )
    if not isinstance(dataset_cfg.get("name"), str) or not dataset_cfg.name:
        raise DatasetError(
            "dataset.name must be 'digits', 'npz:/path/file.npz', 'folder:DIR', 'pydoc',"
            " 'text:/path/file.txt', 'corpora:NAME=PATH,NAME=PATH' or a tfds name"
        )
    if dataset_cfg.name.startswith(text.TEXT_PREFIX):
        _check_text_file(dataset_cfg)
    dataset_info(dataset_cfg)
