"""A labelled text task: which corpus a window of tokens comes from.

dataset.name = "corpora:NAME=PATH,NAME=PATH,..." where PATH is a UTF-8 text file (relative
paths are read from the working directory) or the word `pydoc` for CPython's embedded
documentation. Each corpus is tokenized (dataset.tokenizer) and cut into non-overlapping
windows of dataset.seq_len tokens; label = the corpus's position in the spec. Every corpus
keeps the same number of windows (the smallest corpus's count, or dataset.max_windows_per_class
if lower), spread evenly over the corpus; the last dataset.test_fraction of them are the test
split, so test passages never overlap training text.
"""

import dataclasses
import functools
import os

import ml_collections
import numpy as np

from jaxssl.data import text
from jaxssl.data.pydoc import pydoc_texts

PREFIX = "corpora:"
PYDOC = "pydoc"
TEST_FRACTION = 0.1
EXAMPLE = "corpora:docs=pydoc,plays=/path/shakespeare.txt"


@dataclasses.dataclass(frozen=True)
class Corpus:
    """One class of the task: its label name and where its text comes from."""

    name: str
    path: str  # a file path, or PYDOC


def is_corpora(dataset_cfg: ml_collections.ConfigDict) -> bool:
    """Whether dataset.name is a corpora: spec."""
    return str(dataset_cfg.get("name") or "").startswith(PREFIX)


def parse_spec(name: str) -> tuple[Corpus, ...]:
    """The corpora of a "corpora:NAME=PATH,..." spec; ValueError naming what is malformed."""
    entries = [e.strip() for e in name[len(PREFIX) :].split(",")]
    corpora = []
    for entry in entries:
        label, sep, path = (part.strip() for part in entry.partition("="))
        if not sep or not label or not path:
            raise ValueError(
                f"corpora entry {entry!r} is not NAME=PATH: write dataset.name as {EXAMPLE!r}"
            )
        corpora.append(Corpus(label, path if path == PYDOC else os.path.expanduser(path)))
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise ValueError(f"corpora names {names} repeat: give every corpus its own NAME")
    if len(corpora) < 2:
        raise ValueError(f"a corpora task needs at least 2 corpora, got {names}: e.g. {EXAMPLE!r}")
    for c in corpora:
        if c.path != PYDOC and not os.path.isfile(c.path):
            raise FileNotFoundError(
                f"corpus {c.name!r}: text file not found: {c.path!r} (relative paths are read"
                f" from {os.getcwd()}); fix the path or use {c.name}=pydoc for the embedded docs"
            )
    return tuple(corpora)


def corpus_text(corpus: Corpus, data_dir: str | None) -> str:
    """All of one corpus's text; pydoc topics in split order (train topics, then validation)."""
    if corpus.path == PYDOC:
        # Joined as plain text: [EOS] separators would be a cue only this corpus has.
        return "\n\n".join(pydoc_texts("train", data_dir) + pydoc_texts("validation", data_dir))
    return text.read_utf8(corpus.path)


def spread(num_windows: int, keep: int) -> np.ndarray:
    """keep distinct, sorted window indices spread evenly over range(num_windows)."""
    return np.arange(keep) * num_windows // keep


class CorporaSource:
    """In-memory windows: {"tokens", "attention_mask", "label"} records of one split."""

    def __init__(self, tokens: np.ndarray, labels: np.ndarray, name: str):
        self.tokens, self.labels, self._name = tokens, labels, name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        record = text.pad_record(self.tokens[index], self.tokens.shape[1])
        record["label"] = np.int32(self.labels[index])
        return record

    def __repr__(self) -> str:
        return f"CorporaSource({self._name}, n={len(self)}, classes={np.bincount(self.labels)})"


@functools.lru_cache(maxsize=4)
def _splits(
    name: str, seq_len: int, cap: int | None, test_fraction: float, tokenizer_spec: str,
    data_dir: str | None, stamp: tuple,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """{split: (tokens [N, seq_len], labels [N])}; stamp (file mtimes) in the key only."""
    del stamp
    corpora = parse_spec(name)
    tokenizer = text.tokenizer_of(ml_collections.ConfigDict({"tokenizer": tokenizer_spec}))
    windows = []
    for c in corpora:
        ids = tokenizer.encode(corpus_text(c, data_dir)).astype(np.int32)
        n = len(ids) // seq_len  # the trailing partial window is dropped: no padding cue
        if n < 2:
            raise ValueError(
                f"corpus {c.name!r} has {len(ids)} tokens, fewer than 2 windows of"
                f" dataset.seq_len={seq_len}: use a longer text or a smaller seq_len"
            )
        windows.append(ids[: n * seq_len].reshape(n, seq_len))
    keep = min(len(w) for w in windows)
    keep = min(keep, cap) if cap else keep
    n_test = min(keep - 1, max(1, round(test_fraction * keep)))
    out: dict[str, list] = {"train": [], "test": []}
    for label, w in enumerate(windows):
        kept = w[spread(len(w), keep)]
        out["train"].append((kept[: keep - n_test], label))
        out["test"].append((kept[keep - n_test :], label))
    return {
        split: (
            np.concatenate([t for t, _ in parts]),
            np.concatenate([np.full(len(t), y, np.int32) for t, y in parts]),
        )
        for split, parts in out.items()
    }


def _stamp(corpora: tuple[Corpus, ...], tokenizer_spec: str) -> tuple:
    paths = [c.path for c in corpora if c.path != PYDOC]
    if tokenizer_spec not in (None, "", "byte"):
        paths.append(tokenizer_spec)
    return tuple(os.stat(p).st_mtime_ns if os.path.exists(p) else 0 for p in paths)


def get_source(dataset_cfg: ml_collections.ConfigDict, split: str) -> CorporaSource:
    """The train or test ("validation" is an alias) windows of a corpora: dataset."""
    if split not in ("train", "test", "validation"):
        raise ValueError(f"corpora datasets have splits 'train' and 'test', not {split!r}")
    seq_len = text.seq_len_of(dataset_cfg)
    cap = dataset_cfg.get("max_windows_per_class")
    if cap is not None and (not isinstance(cap, int) or cap < 2):
        raise ValueError(f"dataset.max_windows_per_class={cap!r} must be an integer >= 2")
    fraction = dataset_cfg.get("test_fraction", TEST_FRACTION)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"dataset.test_fraction={fraction!r} must be in (0, 1)")
    tokenizer_spec = dataset_cfg.get("tokenizer") or "byte"
    corpora = parse_spec(dataset_cfg.name)
    splits = _splits(
        dataset_cfg.name,
        seq_len,
        cap,
        float(fraction),
        tokenizer_spec,
        dataset_cfg.get("data_dir"),
        _stamp(corpora, tokenizer_spec),
    )
    tokens, labels = splits["train" if split == "train" else "test"]
    return CorporaSource(tokens, labels, f"{dataset_cfg.name}:{split}")


def num_classes(dataset_cfg: ml_collections.ConfigDict) -> int:
    """One class per corpus in the spec."""
    return len(parse_spec(dataset_cfg.name))
