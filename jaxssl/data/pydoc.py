"""A tfds builder for CPython's bundled English documentation (`pydoc_data.topics`)."""

from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxssl.data import quiet

SPLIT_SEED = 0
VALIDATION_FRACTION = 0.1
FILE_FORMAT = "array_record"


def topics() -> dict[str, str]:
    """topic name -> text, from the interpreter running this code."""
    from pydoc_data.topics import topics as table

    return dict(table)


def split_topics(table: dict[str, str]) -> dict[str, list[str]]:
    """Sorted topic names per split: a seed-0 permutation, validation >= 10% of characters."""
    names = sorted(table)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    total = sum(len(t) for t in table.values())
    validation, chars = [], 0
    for i in order:
        if chars >= VALIDATION_FRACTION * total:
            break
        validation.append(names[i])
        chars += len(table[names[i]])
    train = [n for n in names if n not in set(validation)]
    return {"train": train, "validation": sorted(validation)}


class PydocTopics(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The ~80 documentation topics of CPython, one example per topic: train / validation."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "pydoc_data.topics, seed-0 topic split, ~10% validation."}
    code_path = epath.Path(__file__)  # see digits.py: tfds cannot derive it here

    def _info(self) -> tfds.core.DatasetInfo:
        features = tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "title": tfds.features.Text()}
        )
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=features,
            homepage="https://docs.python.org/3/library/pydoc.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # the text ships inside CPython
        table = topics()
        return {s: self._generate_examples(table, n) for s, n in split_topics(table).items()}

    def _generate_examples(self, table: dict[str, str], names: list[str]):
        for name in names:
            yield name, {"text": table[name], "title": name}


def pydoc_builder(data_dir: str | Path | None = None) -> PydocTopics:
    """The pydoc builder reading/writing ArrayRecord under data_dir (tfds default if None)."""
    data_dir = str(data_dir) if data_dir is not None else tfds.core.constants.DATA_DIR
    return PydocTopics(data_dir=data_dir, file_format=FILE_FORMAT)


def pydoc_texts(split: str, data_dir: str | Path | None = None) -> list[str]:
    """The documents of one split, in order; prepares the dataset on first use."""
    builder = quiet.prepare(lambda: pydoc_builder(data_dir), "the embedded CPython docs")
    source = builder.as_data_source(split=split)
    return [_to_str(source[i]["text"]) for i in range(len(source))]


def _to_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
