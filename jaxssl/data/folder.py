"""Image folders: dataset.name = "folder:DIR", JPEG/PNG files decoded on the host with PIL.

Three layouts, told apart by what DIR holds:
- splits (ImageNet's): DIR/train/CLASS/*.jpg and DIR/val/CLASS/... (or test/); labels are the
  sorted class folder names of train/. dataset.test_split "test" reads test/, else val/ (and
  "val" reads val/, else test/), so the default config evaluates on whichever exists.
- classes: DIR/CLASS/*.jpg with no train/ folder; a fixed 10% of the images (seed 0) is held
  out as the test split.
- flat: DIR/*.jpg, no class folders, so no labels: pre-training only. The skeleton skips the
  evaluation (kNN and probes need labels) with a one-line note; fine-tuning is refused.
Images of varying sizes need dataset.image_size (made N x N by dataset.resize, data/images.py),
as tfds image datasets do; grayscale files (mode L) make a 1-channel dataset, others are RGB.
"""

import dataclasses
import functools
import os
from typing import Any

import ml_collections
import numpy as np
from PIL import Image

from jaxssl.data import images
from jaxssl.data.tfds_io import DatasetError

PREFIX = "folder:"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
HOLDOUT_FRACTION = 0.1  # classes layout: the test split
HOLDOUT_SEED = 0
SIZE_SAMPLE = 1000  # image headers read per split to find the size (spread over the split)
_TEST_ALIASES = {"test": ("test", "val", "validation"), "val": ("val", "validation", "test")}
_TEST_ALIASES["validation"] = _TEST_ALIASES["val"]


@dataclasses.dataclass(frozen=True)
class Split:
    """One split's files (sorted) and labels (-1: unlabelled)."""

    paths: tuple[str, ...]
    labels: np.ndarray


@dataclasses.dataclass(frozen=True)
class Folder:
    """What DIR holds: its layout, class names and the splits found."""

    root: str
    layout: str  # "splits" | "classes" | "flat"
    classes: tuple[str, ...]  # () when flat
    splits: dict[str, Split]  # by folder name ("train", "val" ...) or "train"/"test"


def is_folder(dataset_cfg: ml_collections.ConfigDict) -> bool:
    """Whether dataset.name is a folder: spec."""
    return str(dataset_cfg.get("name") or "").startswith(PREFIX)


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(EXTENSIONS)


def _images_under(path: str) -> list[str]:
    """Every image file below path (any depth, hidden folders skipped), sorted."""
    found = []
    for top, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(top, f) for f in sorted(files) if _is_image(f)]
    return found


def _subdirs(path: str) -> list[str]:
    return sorted(
        d for d in os.listdir(path) if not d.startswith(".") and os.path.isdir(f"{path}/{d}")
    )


def _labelled(path: str, classes: tuple[str, ...] | None) -> tuple[tuple[str, ...], Split]:
    """(classes, split) of a folder of class folders; classes=None takes them from path."""
    loose = [f for f in os.listdir(path) if _is_image(f)]
    if loose:
        raise DatasetError(
            f"{path} holds images outside class folders (e.g. {loose[0]}): move each image"
            f" into {path}/CLASS/ (one folder per class)"
        )
    found = {d: _images_under(f"{path}/{d}") for d in _subdirs(path)}
    found = {d: files for d, files in found.items() if files}
    if classes is None:
        classes = tuple(sorted(found))
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(
            f"{path} has class folders {unknown} that train/ lacks: every evaluated class"
            " needs training images under train/CLASS/"
        )
    index = {c: i for i, c in enumerate(classes)}
    paths = [f for d in sorted(found) for f in found[d]]
    labels = [index[d] for d in sorted(found) for _ in found[d]]
    return classes, Split(tuple(paths), np.asarray(labels, np.int32))


def _stamp(root: str) -> tuple:
    """Modification times of root and its folders two levels down: a change re-scans."""
    stamps = [os.stat(root).st_mtime_ns]
    for d in _subdirs(root):
        stamps.append(os.stat(f"{root}/{d}").st_mtime_ns)
        stamps += [os.stat(f"{root}/{d}/{e}").st_mtime_ns for e in _subdirs(f"{root}/{d}")]
    return tuple(stamps)


@functools.lru_cache(maxsize=4)
def _scan(root: str, stamp: tuple) -> Folder:
    del stamp  # in the cache key only
    if os.path.isdir(f"{root}/train"):
        classes, train = _labelled(f"{root}/train", None)
        if not train.paths:
            raise DatasetError(
                f"{root}/train has no images ({', '.join(EXTENSIONS)}) in class folders:"
                f" put them in {root}/train/CLASS/"
            )
        splits = {"train": train}
        for d in _subdirs(root):
            if d in _TEST_ALIASES["test"]:
                splits[d] = _labelled(f"{root}/{d}", classes)[1]
            elif d != "train":
                try:  # another split (train_small/ ...) if it has the layout, else not a split
                    splits[d] = _labelled(f"{root}/{d}", classes)[1]
                except DatasetError:
                    pass
        return Folder(root, "splits", classes, splits)
    if any(_images_under(f"{root}/{d}") for d in _subdirs(root)):
        classes, everything = _labelled(root, None)
        n = len(everything.paths)
        if n < 2:
            raise DatasetError(f"{root} has {n} image: needs at least 2 to hold out a test split")
        perm = np.random.default_rng(HOLDOUT_SEED).permutation(n)
        n_test = max(1, round(n * HOLDOUT_FRACTION))
        parts = {"train": np.sort(perm[n_test:]), "test": np.sort(perm[:n_test])}
        splits = {
            name: Split(tuple(everything.paths[i] for i in idx), everything.labels[idx])
            for name, idx in parts.items()
        }
        return Folder(root, "classes", classes, splits)
    flat = _images_under(root)
    if not flat:
        raise DatasetError(
            f"{root} holds no images ({', '.join(EXTENSIONS)}): use DIR/train/CLASS/*.jpg +"
            " DIR/val/CLASS/*.jpg, DIR/CLASS/*.jpg, or DIR/*.jpg (unlabelled, pre-training only)"
        )
    split = Split(tuple(flat), np.full(len(flat), -1, np.int32))
    return Folder(root, "flat", (), {"train": split})


def scan(dataset_cfg: ml_collections.ConfigDict) -> Folder:
    """The folder of dataset.name, scanned once (again only when its folders change)."""
    spec = str(dataset_cfg.name)[len(PREFIX) :]
    root = os.path.abspath(os.path.expanduser(spec))
    if not spec or not os.path.isdir(root):
        raise DatasetError(
            f"image folder not found: {spec!r} (from {os.getcwd()}); set dataset.name to"
            " 'folder:DIR' with DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg"
        )
    return _scan(root, _stamp(root))


def split_of(folder: Folder, split: str) -> Split:
    """A split by name; "test" falls back to val/ (and "val" to test/) when that is what exists."""
    for name in (split, *_TEST_ALIASES.get(split, ())):
        if name in folder.splits:
            return folder.splits[name]
    if folder.layout == "flat":
        raise DatasetError(
            f"{folder.root} has no class folders, so only a 'train' split (unlabelled): for"
            f" split {split!r} use DIR/train/CLASS/ and DIR/val/CLASS/ folders"
        )
    raise DatasetError(
        f"{folder.root} has no split {split!r}: it has {', '.join(sorted(folder.splits))}"
        " (set dataset.train_split / dataset.test_split to one of them)"
    )


def _channels(path: str) -> int:
    try:
        with Image.open(path) as im:
            return 1 if im.mode in images.GRAY_MODES else 3
    except OSError as e:
        raise DatasetError(f"{path}: not a readable image ({e}): remove or replace it") from e


def _sizes(paths: tuple[str, ...]) -> dict[tuple[int, int], str]:
    """(h, w) -> an example file, from the headers of up to SIZE_SAMPLE spread-out files."""
    pick = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), SIZE_SAMPLE)).astype(int))
    sizes: dict[tuple[int, int], str] = {}
    for i in pick:
        try:
            with Image.open(paths[i]) as im:
                sizes.setdefault((im.height, im.width), paths[i])
        except OSError as e:
            raise DatasetError(f"{paths[i]}: not a readable image ({e}): remove it") from e
    return sizes


def image_shape(dataset_cfg: ml_collections.ConfigDict) -> tuple[int, int, int]:
    """(H, W, C) every example has: image_size x image_size, or the one size all files share."""
    folder = scan(dataset_cfg)
    size = dataset_cfg.get("image_size")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise DatasetError(f"dataset.image_size={size!r} must be a positive integer")
    train_split = dataset_cfg.get("train_split", "train")
    return _shape(folder.root, _stamp(folder.root), train_split, size)


@functools.lru_cache(maxsize=8)
def _shape(root: str, stamp: tuple, train_split: str, size: int | None) -> tuple[int, int, int]:
    folder = _scan(root, stamp)
    channels = _channels(split_of(folder, train_split).paths[0])
    if size is not None:
        return size, size, channels
    sizes = {}
    for split in folder.splits.values():
        for shape, example in _sizes(split.paths).items():
            sizes.setdefault(shape, example)
    if len(sizes) > 1:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        raise DatasetError(
            f"{folder.root} has images of different sizes ({fa} is {a[0]}x{a[1]}, {fb} is"
            f" {b[0]}x{b[1]}): set --config.dataset.image_size=N to resize them to N x N"
            " (dataset.resize: whole or crop)"
        )
    (h, w), _ = sizes.popitem()
    return h, w, channels


def num_classes(dataset_cfg: ml_collections.ConfigDict) -> int | None:
    """Class folders of train/ (or DIR), None for a flat folder (no labels)."""
    folder = scan(dataset_cfg)
    return len(folder.classes) if folder.classes else None


class FolderSource:
    """Random access to one split: {"image": uint8 HWC, "label": int} (no label when flat)."""

    def __init__(
        self,
        split: Split,
        shape: tuple[int, int, int],
        size: int | None,
        name: str,
        resize: str,
    ):
        self._split, self._shape, self._size, self._name = split, shape, size, name
        self._resize = resize

    def __len__(self) -> int:
        return len(self._split.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self._split.paths[index]
        try:
            example = images.decode(path, self._shape[-1], self._size, self._resize)
        except OSError as e:
            raise DatasetError(f"{path}: not a readable image ({e}): remove or replace it") from e
        image = example["image"]
        if image.shape != self._shape:
            raise DatasetError(
                f"{path} is {image.shape[0]}x{image.shape[1]}, the other images"
                f" {self._shape[0]}x{self._shape[1]}: set dataset.image_size=N to resize all"
            )
        label = int(self._split.labels[index])
        return example if label < 0 else example | {"label": label}

    def __repr__(self) -> str:
        return f"FolderSource({self._name}, n={len(self)})"


def get_source(dataset_cfg: ml_collections.ConfigDict, split: str) -> FolderSource:
    """The split's source; decoding happens per example, on the reading threads."""
    folder = scan(dataset_cfg)
    files = split_of(folder, split)
    shape = image_shape(dataset_cfg)
    return FolderSource(
        files,
        shape,
        dataset_cfg.get("image_size"),
        f"{folder.root}:{split}",
        images.resize_of(dataset_cfg),
    )
