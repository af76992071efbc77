"""A tfds builder for scikit-learn's bundled 8x8 handwritten digits (no network, no TF)."""

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxssl.data import quiet

NUM_EXAMPLES = 1797
NUM_TEST = 359  # round(20% of 1,797); the other 1,438 examples are "train"
SPLIT_SEED = 0
FILE_FORMAT = "array_record"


def split_indices() -> dict[str, np.ndarray]:
    """Sorted sklearn indices of each split: a fixed seed-0 permutation, 80/20."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(NUM_EXAMPLES)
    return {"train": np.sort(perm[NUM_TEST:]), "test": np.sort(perm[:NUM_TEST])}


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map sklearn's 0..16 pixel values to uint8 [N, 8, 8, 1] (x * 255 / 16, rounded)."""
    return np.round(np.asarray(images, np.float64) * 255.0 / 16.0).astype(np.uint8)[..., None]


# skip_registration: the builder is used by instance, so a second import (python -m) is harmless.
class SklearnDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """1,797 real 8x8 grayscale digits; splits train (1,438) and test (359)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "sklearn.datasets.load_digits, seed-0 80/20 split."}
    # tfds 4.9.10 derives this via importlib_resources, which it does not install on py>=3.9.
    code_path = epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        # Tensor, not Image: Image features need TensorFlow to PNG-encode.
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=10),
                "index": tfds.features.Scalar(dtype=np.int64),  # row in load_digits()
            }
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=features,
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # the data ships inside scikit-learn
        from sklearn.datasets import load_digits  # here: only the first use needs it (0.6 s)

        digits = load_digits()
        images, labels = to_uint8(digits.images), digits.target.astype(np.int64)
        return {
            name: self._generate_examples(images, labels, idx)
            for name, idx in split_indices().items()
        }

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray):
        for i in idx:
            yield int(i), {"image": images[i], "label": int(labels[i]), "index": int(i)}


def digits_builder(data_dir: str | Path | None = None) -> SklearnDigits:
    """The digits builder reading/writing ArrayRecord under data_dir (tfds default if None)."""
    data_dir = str(data_dir) if data_dir is not None else tfds.core.constants.DATA_DIR
    return SklearnDigits(data_dir=data_dir, file_format=FILE_FORMAT)


def prepare_digits(data_dir: str | Path | None = None) -> None:
    """Build the digits dataset into data_dir once (quietly); a no-op when already prepared."""
    quiet.prepare(lambda: digits_builder(data_dir), "the embedded digits dataset")
