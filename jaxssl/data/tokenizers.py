"""Tokenizers: byte-level (default, nothing to train), byte-level BPE trained by jaxssl, and
a pretrained checkpoint's own tokenizer.json (BERT WordPiece, GPT-2 byte-level BPE ...).

jaxssl's own tokenizers put the special tokens first, in the same order, so ids 0..5 are
[PAD] [MASK] [CLS] [SEP] [BOS] [EOS] (the module constants). A pretrained tokenizer keeps its
ids (BERT: [PAD] 0, [CLS] 101, [SEP] 102, [MASK] 103; GPT-2: <|endoftext|> 50256), so code
reads a tokenizer's ids from the instance (tok.mask_id, tok.eos_id ..., tok.is_special()),
never from the constants. Each tokenizer also exposes per-token tables the on-device code
needs (special flags, byte lengths for bits-per-byte, word starts for whole-word masking).
"""

import json
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


# Roles a pretrained tokenizer's special tokens play, and the names they go by.
ROLES = ("pad", "mask", "cls", "sep", "bos", "eos")
ROLE_NAMES = {
    "pad": ("[PAD]", "<pad>", "<|pad|>"),
    "mask": ("[MASK]", "<mask>"),
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "bos": ("[BOS]", "<s>", "<|endoftext|>", "<bos>"),
    "eos": ("[EOS]", "</s>", "<|endoftext|>", "<eos>"),
}
# A role a tokenizer lacks borrows another's id: GPT-2 has <|endoftext|> for all of them.
FALLBACK = {"cls": "bos", "sep": "eos", "bos": "cls", "eos": "sep", "pad": "eos", "mask": None}


class JSONTokenizer(Tokenizer):
    """Any HF `tokenizers` tokenizer.json: a pretrained checkpoint's own (BERT's WordPiece,
    GPT-2's byte-level BPE, SentencePiece-style) with its special tokens where it put them.

    Special-token ids are per instance (pad_id, mask_id, cls_id, sep_id, bos_id, eos_id), read
    from tokenizer_config.json beside the file when there is one, else found by their usual
    names; a role the tokenizer lacks borrows another's (GPT-2: <|endoftext|> is bos, eos, cls,
    sep and pad) and mask_id is None without a mask token. is_special() marks every special
    token. Per-token tables follow the vocabulary's kind: byte-level pieces (Ġ = space),
    WordPiece (## continues a word), SentencePiece (▁ = space).
    """

    def __init__(self, path: str):
        from tokenizers import Tokenizer as HFTokenizer  # optional heavy import

        self.path = path
        self._tok = HFTokenizer.from_file(path)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        added = self._tok.get_added_tokens_decoder()
        special_ids = {i for i, t in added.items() if getattr(t, "special", True)}
        ids = self._role_ids(path, special_ids)
        for role in ROLES:
            setattr(self, f"{role}_id", ids[role])
        special_ids |= {i for i in ids.values() if i is not None}
        self._special = np.zeros(self.vocab_size, bool)
        self._special[sorted(special_ids)] = True
        pieces = [self._tok.id_to_token(i) or "" for i in range(self.vocab_size)]
        kind = self._kind(path)
        bytes_, space, initial = [], [], []
        for piece, special in zip(pieces, self._special, strict=True):
            if kind == "wordpiece":
                text, starts = piece.removeprefix("##"), not piece.startswith("##")
            elif kind == "bytelevel":  # one printable character per byte
                text, starts = piece, piece.startswith("Ġ")
            else:
                text, starts = piece.replace("▁", " "), piece.startswith("▁")
            n = len(text) if kind == "bytelevel" else len(text.encode("utf-8"))
            bytes_.append(0 if special else n)
            blank = text.strip("ĠĊĉč ") == "" if kind == "bytelevel" else text.strip() == ""
            space.append(not special and bool(text) and blank)
            initial.append(not special and starts)
        self._bytes = np.array(bytes_, np.int32)
        self._space, self._initial = np.array(space), np.array(initial)

    def _role_ids(self, path: str, special_ids: set[int]) -> dict[str, int | None]:
        config = _read_json(os.path.join(os.path.dirname(path), "tokenizer_config.json"))
        ids: dict[str, int | None] = {}
        for role in ROLES:
            given = config.get(f"{role}_token")
            given = given.get("content") if isinstance(given, dict) else given
            names = ((given,) if given else ()) + ROLE_NAMES[role]
            found = [self._tok.token_to_id(n) for n in names]
            ids[role] = next(
                (i for i in found if i is not None and (given or i in special_ids)), None
            )
        for role, other in FALLBACK.items():
            if ids[role] is None and other is not None:
                ids[role] = ids[other]
        if ids["eos"] is None:
            raise ValueError(
                f"{path}: no end-of-sequence / separator token found (tried "
                f"{', '.join(ROLE_NAMES['eos'] + ROLE_NAMES['sep'])})"
            )
        return ids

    def _kind(self, path: str) -> str:
        spec = _read_json(path)
        model = (spec.get("model") or {}).get("type", "")
        text = json.dumps({k: spec.get(k) for k in ("pre_tokenizer", "decoder")})
        if model == "WordPiece":
            return "wordpiece"
        return "bytelevel" if "ByteLevel" in text else "sentencepiece"

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, np.int32)

    def decode(self, ids: np.ndarray) -> str:
        return self._tok.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    def is_special(self) -> np.ndarray:
        return self._special.copy()

    def token_bytes(self) -> np.ndarray:
        return self._bytes

    def is_space(self) -> np.ndarray:
        return self._space

    def word_initial(self) -> np.ndarray:
        return self._initial

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, vocab_size={self.vocab_size})"


class BPETokenizer(JSONTokenizer):
    """A byte-level BPE trained by jaxssl (train_tokenizer): specials at ids 0..5."""

    def __init__(self, path: str):
        super().__init__(path)
        for i, name in enumerate(SPECIAL_TOKENS):
            if self._tok.token_to_id(name) != i:
                raise ValueError(
                    f"{path}: special token {name} must have id {i}: retrain it with the"
                    " train_tokenizer job"
                )


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_jaxssl_bpe(path: str) -> bool:
    vocab = (_read_json(path).get("model") or {}).get("vocab") or {}
    added = {t.get("content"): t.get("id") for t in _read_json(path).get("added_tokens", [])}
    table = {**(vocab if isinstance(vocab, dict) else {}), **added}
    return all(table.get(name) == i for i, name in enumerate(SPECIAL_TOKENS))


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
    """'byte' (or None) -> ByteTokenizer; a tokenizer.json (or a folder holding one: a jaxssl
    workdir or a Hugging Face checkpoint) -> BPETokenizer when jaxssl trained it, else a
    JSONTokenizer with the pretrained tokenizer's own special-token ids."""
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
        _CACHE[key] = BPETokenizer(path) if _is_jaxssl_bpe(path) else JSONTokenizer(path)
    return _CACHE[key]
