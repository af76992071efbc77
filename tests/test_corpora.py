"""The corpora: source (which corpus a window comes from), on small temporary text files."""

import ml_collections
import numpy as np
import pytest

from jaxssl.config import ConfigError
from jaxssl.data import corpora, sources
from jaxssl.data.pydoc import pydoc_texts
from jaxssl.data.tokenizers import NUM_SPECIAL
from jaxssl.validate import validate

from .helpers import load_config

SEQ = 16


def _write(tmp_path, name: str, num_bytes: int) -> str:
    """Seeded random lowercase text: no two windows hold the same bytes."""
    rng = np.random.default_rng(len(name) + num_bytes)
    letters = rng.integers(ord("a"), ord("z") + 1, num_bytes, dtype=np.uint8)
    path = tmp_path / f"{name}.txt"
    path.write_bytes(letters.tobytes())
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpora")
    # 50, 30 (+ 7 leftover bytes) and 41 windows of 16 bytes.
    return [_write(tmp, n, b) for n, b in (("alpha", 800), ("beta", 487), ("gamma", 656))]


def _cfg(files, **extra) -> ml_collections.ConfigDict:
    spec = ",".join(f"{n}={p}" for n, p in zip(("a", "b", "c"), files, strict=True))
    return ml_collections.ConfigDict({"name": f"corpora:{spec}", "seq_len": SEQ, **extra})


def _windows(path: str) -> np.ndarray:
    """Independent: the file's bytes as byte-tokenizer ids, cut into full windows."""
    ids = np.frombuffer(open(path, "rb").read(), np.uint8).astype(np.int32) + NUM_SPECIAL
    n = len(ids) // SEQ
    return ids[: n * SEQ].reshape(n, SEQ)


def _window_index(windows: np.ndarray, tokens: np.ndarray) -> int:
    (match,) = np.flatnonzero((windows == tokens).all(axis=1))
    return int(match)


def test_labels_balance_and_disjoint_splits(files):
    cfg = _cfg(files)
    train, test = sources.get_source(cfg, "train"), sources.get_source(cfg, "test")
    # Smallest corpus: 30 windows -> 27 train + 3 test per class.
    assert np.bincount(train.labels).tolist() == [27, 27, 27]
    assert np.bincount(test.labels).tolist() == [3, 3, 3]
    info = sources.dataset_info(cfg)
    assert info.num_classes == 3 and info.split_sizes == {"train": 81, "test": 9}
    rec = train[0]
    assert rec["tokens"].dtype == np.int32 and rec["attention_mask"].tolist() == [1] * SEQ
    for label, path in enumerate(files):
        windows = _windows(path)
        found = {}
        for split, source in (("train", train), ("test", test)):
            rows = [i for i in range(len(source)) if source[i]["label"] == label]
            found[split] = [_window_index(windows, source[i]["tokens"]) for i in rows]
        # Every record is a real window of its own corpus; test windows all come after train.
        assert len(set(found["train"] + found["test"])) == 30
        assert max(found["train"]) < min(found["test"])
        assert found["test"][-1] >= len(windows) - 2  # spread to the corpus's end
    assert len(sources.get_source(cfg, "validation")) == 9  # alias of test


def test_cap_and_test_fraction(files):
    cfg = _cfg(files, max_windows_per_class=10, test_fraction=0.2)
    train, test = sources.get_source(cfg, "train"), sources.get_source(cfg, "test")
    assert np.bincount(train.labels).tolist() == [8, 8, 8]
    assert np.bincount(test.labels).tolist() == [2, 2, 2]
    np.testing.assert_array_equal(corpora.spread(50, 10), np.arange(0, 50, 5))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("a={0}", "at least 2 corpora"),
        ("a={0},{0}", "is not NAME=PATH"),
        ("a={0},b=", "is not NAME=PATH"),
        ("a={0},a={0}", "repeat"),
        ("a={0},b=/no/such/file.txt", "text file not found"),
        ("a={0},b={1}", "fewer than 2 windows"),
    ],
)
def test_bad_specs_are_clear_errors(files, tmp_path, spec, message):
    short = tmp_path / "short.txt"
    short.write_text("too short", encoding="utf-8")
    cfg = ml_collections.ConfigDict(
        {"name": "corpora:" + spec.format(files[0], short), "seq_len": SEQ}
    )
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        sources.check_dataset(cfg)


def _shipped(files):
    config = load_config("finetune_corpus_id")
    config.dataset.name = _cfg(files).name
    config.dataset.seq_len = config.model.max_len = SEQ
    config.batch_size = 16
    return config


def test_shipped_config_validates_and_names_missing_data(files):
    config = _shipped(files)
    validate(config)  # the fine-tune checks trace the text model on token windows
    config.dataset.name = "corpora:docs=pydoc,plays=missing/input.txt"
    with pytest.raises(ConfigError, match="plays.*text file not found"):
        validate(config)


def test_pydoc_corpus(files, tmp_path):
    cfg = ml_collections.ConfigDict(
        {"name": f"corpora:docs=pydoc,a={files[0]}", "seq_len": SEQ, "data_dir": str(tmp_path)}
    )
    train = sources.get_source(cfg, "train")
    assert np.bincount(train.labels).tolist() == [45, 45]  # capped by the 50-window file
    first_topic = pydoc_texts("train", str(tmp_path))[0].encode("utf-8")
    window = (train[0]["tokens"] - NUM_SPECIAL).astype(np.uint8).tobytes()
    assert window == first_topic[:SEQ] and train[0]["label"] == 0
