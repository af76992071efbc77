"""Reading prepared tfds datasets without downloading (images and text share it)."""

from typing import Any

import ml_collections
import tensorflow_datasets as tfds


class DatasetError(ValueError):
    """A dataset that is missing, unprepared or malformed; the message says how to fix it."""


def data_dir_of(cfg: ml_collections.ConfigDict) -> str:
    data_dir = cfg.get("data_dir")
    return str(data_dir) if data_dir else tfds.core.constants.DATA_DIR


def tfds_builder(name: str, data_dir: str) -> Any:
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DatasetError(
            f"unknown dataset '{name}': use 'digits', 'npz:/path/file.npz' or a tfds name"
            " such as 'cifar10', 'stl10', 'imagenet2012' (optionally 'name/config:version')"
        ) from e


def tfds_source(name: str, split: str, data_dir: str) -> Any:
    builder = tfds_builder(name, data_dir)
    try:
        # download=False: nothing may be fetched at run time; tfds.testing.mock_data patches this.
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises several types here; all mean "cannot read it"
        if builder.is_prepared() and builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
            first_line = (str(e).splitlines() or [""])[0]
            raise DatasetError(
                f"cannot read split '{split}' of tfds dataset '{name}' in {data_dir}:"
                f" {type(e).__name__}: {first_line}"
            ) from e
        # Unprepared data makes tfds complain about TFRECORD, which misleads: say what to do.
        raise DatasetError(
            f"tfds dataset '{name}' is not prepared in ArrayRecord format under {data_dir}: on a"
            f" machine with network run `tfds build {name} --file_format=array_record"
            f" --data_dir={data_dir}` and copy that folder here"
        ) from e
