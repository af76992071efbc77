"""Tokenizers: byte-level (default, nothing to train) and byte-level BPE via HF `tokenizers`.

Both put the special tokens first, in the same order, so ids 0..5 mean the same thing for
every tokenizer: [PAD] [MASK] [CLS] [SEP] [BOS] [EOS]. Each tokenizer also exposes per-token
tables the on-device code needs (special flags, byte lengths for bits-per-byte, word starts
for whole-word masking).
"""

import os

import numpy as np

SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[CLS]", "[SEP]", "[BOS]", "[EOS]")
PAD_ID, MASK_ID, CLS_ID, SEP_ID, BOS_ID, EOS_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)
BYTE = "byte"
TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """Shared interface: encode/decode plus per-token numpy tables of length vocab_size."""

    vocab_size: int
    pad_id, mask_id, cls_id, sep_id, bos_id, eos_id = (
        PAD_ID,
        MASK_ID,
        CLS_ID,
        SEP_ID,
        BOS_ID,
        EOS_ID,
    )

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of text, without special tokens."""
        raise NotImplementedError

    def decode(self, ids: np.ndarray) -> str:
        """Text of ids; special tokens are dropped."""
        raise NotImplementedError

    def is_special(self) -> np.ndarray:
        """bool [vocab]: ids that are never masked, replaced or counted as text."""
        table = np.zeros(self.vocab_size, bool)
        table[:NUM_SPECIAL] = True
        return table

    def token_bytes(self) -> np.ndarray:
        """int32 [vocab]: UTF-8 bytes each token stands for (0 for specials): bits per byte."""
        raise NotImplementedError

    def is_space(self) -> np.ndarray:
        """bool [vocab]: tokens that are whitespace only (word separators)."""
        raise NotImplementedError

    def word_initial(self) -> np.ndarray:
        """bool [vocab]: tokens that carry a leading-space marker, so always start a word."""
        return np.zeros(self.vocab_size, bool)


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes shifted past the special ids: 256 + 6 = 262 tokens, exact round trip."""

    vocab_size = 256 + NUM_SPECIAL

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32) + NUM_SPECIAL

    def decode(self, ids: np.ndarray) -> str:
        ids = np.asarray(ids).reshape(-1)
        data = (ids[ids >= NUM_SPECIAL] - NUM_SPECIAL).astype(np.uint8).tobytes()
        return data.decode("utf-8", errors="replace")

    def token_bytes(self) -> np.ndarray:
        return (~self.is_special()).astype(np.int32)

    def is_space(self) -> np.ndarray:
        table = np.zeros(self.vocab_size, bool)
        table[[NUM_SPECIAL + b for b in b" \t\n\r\x0b\x0c"]] = True
        return table

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=262)"


class BPETokenizer(Tokenizer):
    """A trained byte-level BPE (GPT-2 style) loaded from a tokenizer.json file."""

    def __init__(self, path: str):
        from tokenizers import Tokenizer as HFTokenizer  # optional heavy import

        self.path = path
        self._tok = HFTokenizer.from_file(path)
        self.vocab_size = self._tok.get_vocab_size()
        for i, name in enumerate(SPECIAL_TOKENS):
            if self._tok.token_to_id(name) != i:
                raise ValueError(
                    f"{path}: special token {name} must have id {i}: retrain it with the"
                    " train_tokenizer job"
                )
        pieces = [self._tok.id_to_token(i) or "" for i in range(self.vocab_size)]
        special = self.is_special()
        # ByteLevel maps each byte to one printable character, so len(piece) = bytes.
        pairs = list(zip(pieces, special, strict=True))
        self._bytes = np.array([0 if s else len(p) for p, s in pairs], np.int32)
        self._space = np.array([not s and p.strip("ĠĊĉč") == "" for p, s in pairs])
        self._initial = np.array([not s and p.startswith("Ġ") for p, s in pairs])

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, np.int32)

    def decode(self, ids: np.ndarray) -> str:
        return self._tok.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def token_bytes(self) -> np.ndarray:
        return self._bytes

    def is_space(self) -> np.ndarray:
        return self._space

    def word_initial(self) -> np.ndarray:
        return self._initial

    def __repr__(self) -> str:
        return f"BPETokenizer({self.path}, vocab_size={self.vocab_size})"


def train_bpe(texts: list[str], vocab_size: int, path: str) -> BPETokenizer:
    """Trains a byte-level BPE with the special tokens at ids 0..5 and saves it to path."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tok.save(path)
    return BPETokenizer(path)


_CACHE: dict[tuple[str, int], Tokenizer] = {}


def get_tokenizer(spec: str | None) -> Tokenizer:
    """'byte' (or None) -> ByteTokenizer; a path to a tokenizer.json -> BPETokenizer."""
    if spec in (None, "", BYTE):
        return ByteTokenizer()
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        path = os.path.join(path, TOKENIZER_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"tokenizer file {path!r} not found: use dataset.tokenizer='byte' or train one with"
            " `python -m jaxssl.main --config CONFIG --workdir W --config.job=train_tokenizer`"
            " and set --config.dataset.tokenizer=W/tokenizer.json"
        )
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _CACHE:
        _CACHE[key] = BPETokenizer(path)
    return _CACHE[key]
