"""Text sources: pydoc (embedded), plain UTF-8 files and tfds text datasets, as int32 windows.

Every record is {"tokens": int32 [L], "attention_mask": int32 [L]} (1 = real token, 0 = pad),
plus "label" when a tfds dataset has one. Small corpora (pydoc, text files) are tokenized once
and packed as one stream, documents separated by [EOS], cut into windows of dataset.seq_len
every `stride` tokens (stride 1 samples every offset, like nanoGPT's random batches). tfds
datasets are read one document per record: [CLS] text [SEP], truncated and padded.
"""

import functools
import os
from typing import Any

import ml_collections
import numpy as np

from jaxssl.data import tokenizers
from jaxssl.data.pydoc import pydoc_texts
from jaxssl.data.tfds_io import data_dir_of, tfds_builder, tfds_source

TEXT_PREFIX = "text:"
PYDOC = "pydoc"
FILE_VALIDATION_FRACTION = 0.1  # text files: the last 10% of characters, as nanoGPT


def is_text(dataset_cfg: ml_collections.ConfigDict) -> bool:
    """pydoc, text:/path, or any dataset configured with a seq_len (tfds text by name)."""
    name = dataset_cfg.get("name") or ""
    prefixed = name.startswith((TEXT_PREFIX, "corpora:"))  # corpora: see data/corpora.py
    return name == PYDOC or prefixed or dataset_cfg.get("seq_len") is not None


def tokenizer_of(dataset_cfg: ml_collections.ConfigDict) -> tokenizers.Tokenizer:
    """dataset.tokenizer: 'byte' (default) or the path of a trained tokenizer.json."""
    return tokenizers.get_tokenizer(dataset_cfg.get("tokenizer", tokenizers.BYTE))


class WindowSource:
    """Fixed-length windows over one token stream; the last one is padded."""

    def __init__(self, tokens: np.ndarray, seq_len: int, stride: int, name: str):
        if seq_len < 2 or not 1 <= stride <= seq_len:
            raise ValueError(
                f"need seq_len >= 2 and 1 <= stride <= seq_len, got {seq_len}, {stride}"
            )
        self.tokens, self.seq_len, self.stride, self._name = tokens, seq_len, stride, name
        n = len(tokens)
        self._len = 1 if n <= seq_len else -(-(n - seq_len) // stride) + 1

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self._len:
            raise IndexError(index)
        start = int(index) * self.stride
        piece = self.tokens[start : start + self.seq_len]
        return pad_record(piece, self.seq_len)

    def __repr__(self) -> str:
        return f"WindowSource({self._name}, n={len(self)}, seq_len={self.seq_len})"


class DocumentSource:
    """One record per document of a random-access source: [CLS] text [SEP] [PAD]..."""

    def __init__(self, source: Any, tokenizer: tokenizers.Tokenizer, seq_len: int, cfg: Any):
        self._source, self._tok, self.seq_len = source, tokenizer, seq_len
        self._text_key = cfg.get("text_key", "text")
        self._label_key = cfg.get("label_key", "label")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        ex = self._source[index]
        if self._text_key not in ex:
            raise KeyError(
                f"record has keys {sorted(ex)}, no text key {self._text_key!r}: set"
                " dataset.text_key"
            )
        ids = self._tok.encode(_to_str(ex[self._text_key]))[: self.seq_len - 2]
        record = pad_record(
            np.concatenate([[self._tok.cls_id], ids, [self._tok.sep_id]]), self.seq_len
        )
        if self._label_key in ex:
            record["label"] = np.int32(ex[self._label_key])
        return record


def pad_record(ids: np.ndarray, seq_len: int) -> dict[str, np.ndarray]:
    """{"tokens", "attention_mask"} of length seq_len: ids then [PAD] (id 0, mask 0)."""
    tokens = np.zeros(seq_len, np.int32)
    tokens[: len(ids)] = ids
    mask = (np.arange(seq_len) < len(ids)).astype(np.int32)
    return {"tokens": tokens, "attention_mask": mask}


def pack(docs: list[str], tokenizer: tokenizers.Tokenizer) -> np.ndarray:
    """One int32 stream: each document's ids followed by [EOS]."""
    parts = []
    for doc in docs:
        parts += [tokenizer.encode(doc), np.array([tokenizer.eos_id], np.int32)]
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)


def _to_str(value: Any) -> str:
    value = value.item() if isinstance(value, np.ndarray) else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_utf8(path: str) -> str:
    """A file's text; ValueError naming the file and the fix when it is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path!r} is not UTF-8 text ({e.reason} at byte {e.start}): text datasets read"
            " UTF-8 files; convert it (e.g. `iconv -t UTF-8`) or point at another file"
        ) from None


def file_splits(path: str) -> dict[str, str]:
    """A UTF-8 file's two splits from one read: train = first 90% of characters, validation
    (also "test") = the rest."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"text file not found: {path!r}; use dataset.name='text:/abs/path'")
    text = read_utf8(path)
    cut = int(len(text) * (1 - FILE_VALIDATION_FRACTION))
    return {"train": text[:cut], "validation": text[cut:]}


def file_texts(path: str, split: str) -> list[str]:
    """One split of a UTF-8 file (file_splits) as a one-document list."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"text files have splits 'train' and 'validation', not {split!r}")
    return [file_splits(path)["train" if split == "train" else "validation"]]


def split_texts(dataset_cfg: ml_collections.ConfigDict, split: str) -> list[str]:
    """The raw documents of a pydoc or text-file split (for stream packing, tokenizer training)."""
    name = dataset_cfg.name
    if name == PYDOC:
        if split not in ("train", "validation"):
            raise ValueError(f"pydoc has splits 'train' and 'validation', not {split!r}")
        return pydoc_texts(split, dataset_cfg.get("data_dir"))
    if name.startswith(TEXT_PREFIX):
        return file_texts(os.path.expanduser(name[len(TEXT_PREFIX) :]), split)
    source = tfds_source(name, split, data_dir_of(dataset_cfg))
    key = dataset_cfg.get("text_key", "text")
    return [_to_str(source[i][key]) for i in range(len(source))]


@functools.lru_cache(maxsize=8)
def _stream(name: str, split: str, tokenizer_spec: str, data_dir: str | None, stamp: Any) -> Any:
    del stamp  # in the key only: a changed file or tokenizer is re-read
    cfg = ml_collections.ConfigDict(
        {"name": name, "data_dir": data_dir, "tokenizer": tokenizer_spec}
    )
    return pack(split_texts(cfg, split), tokenizer_of(cfg))


def _stamp(dataset_cfg: ml_collections.ConfigDict) -> tuple:
    paths = (
        [dataset_cfg.name[len(TEXT_PREFIX) :]] if dataset_cfg.name.startswith(TEXT_PREFIX) else []
    )
    spec = dataset_cfg.get("tokenizer", tokenizers.BYTE)
    if spec not in (None, "", tokenizers.BYTE):
        paths.append(spec)
    return tuple(
        os.stat(os.path.expanduser(p)).st_mtime_ns if os.path.exists(p) else 0 for p in paths
    )


def seq_len_of(dataset_cfg: ml_collections.ConfigDict) -> int:
    """dataset.seq_len (128 when unset); ValueError for anything but an integer >= 2."""
    seq_len = dataset_cfg.get("seq_len")
    if seq_len is None:
        return 128
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 2:
        raise ValueError(
            f"dataset.seq_len={seq_len!r} must be an integer >= 2 (tokens per window; e.g. 128)"
        )
    return seq_len


def get_text_source(dataset_cfg: ml_collections.ConfigDict, split: str) -> Any:
    """A random-access source of {"tokens", "attention_mask"(, "label")} records for one split."""
    seq_len = seq_len_of(dataset_cfg)
    name = dataset_cfg.name
    if name == PYDOC or name.startswith(TEXT_PREFIX):
        stream = _stream(
            name,
            split,
            dataset_cfg.get("tokenizer", tokenizers.BYTE),
            dataset_cfg.get("data_dir"),
            _stamp(dataset_cfg),
        )
        train = split == dataset_cfg.get("train_split", "train")
        key = "train_stride" if train else "eval_stride"
        stride = dataset_cfg.get(key) or seq_len
        if not isinstance(stride, int) or not 1 <= stride <= seq_len:
            raise ValueError(
                f"dataset.{key}={stride!r} must be an integer in [1, seq_len={seq_len}]"
            )
        return WindowSource(stream, seq_len, stride, f"{name}:{split}")
    source = tfds_source(name, split, data_dir_of(dataset_cfg))
    return DocumentSource(source, tokenizer_of(dataset_cfg), seq_len, dataset_cfg)


def num_classes(dataset_cfg: ml_collections.ConfigDict) -> int | None:
    """Classes of a tfds text dataset's label feature, or None (pydoc, text files)."""
    name = dataset_cfg.name
    if name == PYDOC or name.startswith(TEXT_PREFIX):
        return None
    features = tfds_builder(name, data_dir_of(dataset_cfg)).info.features
    key = dataset_cfg.get("text_key", "text")
    if key not in features:
        raise ValueError(
            f"tfds dataset '{name}' has features {sorted(features)}, no {key!r}:"
            " set dataset.text_key"
        )
    label_key = dataset_cfg.get("label_key", "label")
    return getattr(features[label_key], "num_classes", None) if label_key in features else None
