"""First use of an embedded tfds builder in one line, not tfds' dozen lines of preparation."""

import contextlib
import fcntl
import io
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from tensorflow_datasets.core.utils import tqdm_utils


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Mutes tfds' progress bars, its stdout/stderr prints and its absl warnings meanwhile."""
    was_active = tqdm_utils._active  # tfds keeps only a setter: read its flag to restore it
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    tqdm_utils.display_progress_bar(False)
    absl_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        tqdm_utils.display_progress_bar(was_active)
        absl_logger.setLevel(level)


@contextlib.contextmanager
def exclusive(folder: str) -> Iterator[None]:
    """Holds an exclusive lock on folder/.jaxssl_prepare.lock (made if missing) meanwhile.

    Two runs started at once on a fresh machine would both prepare the same dataset, and
    tfds' final rename fails in the later one (FileExistsError): the later one waits here and
    then finds it prepared. A path with a scheme (gs://...) is not locked: no flock there.
    """
    if "://" in folder:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".jaxssl_prepare.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when f closes, or if the process dies
        yield


def prepare(make_builder: Callable[[], Any], what: str) -> Any:
    """The builder make_builder() returns, prepared; says one line when it prepares it now."""
    with silenced():
        builder = make_builder()  # warns "no dataset_info.json" before the first prepare
        if builder.is_prepared():
            return builder
    folder = os.path.dirname(str(builder.data_dir))
    try:
        with exclusive(folder):
            with silenced():
                builder = make_builder()  # another process may have prepared it meanwhile
                if builder.is_prepared():
                    return builder
            print(f"jaxssl: preparing {what} in {builder.data_dir} (first use only)", flush=True)
            with silenced():
                builder.download_and_prepare()
    except OSError as e:  # a read-only or missing data_dir, a full disk: one line, not a trace
        raise ValueError(
            f"cannot prepare {what} in {folder} ({e.strerror or e}): set"
            " --config.dataset.data_dir to a folder you can write to"
        ) from None
    return builder
