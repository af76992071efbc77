"""Text data: tokenizers round-trip, packing and padding masks, pydoc/text-file/tfds sources."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxssl import validate
from jaxssl.config import ConfigError
from jaxssl.data import pipeline, pydoc, sources, text, tokenizers

from .text_helpers import corpus_file, tiny_text_config

UNICODE = "naïve café — 東京 🙂 Ωmega\n\ttab"


def test_byte_tokenizer_round_trip_and_specials():
    tok = tokenizers.ByteTokenizer()
    ids = tok.encode(UNICODE)
    assert ids.dtype == np.int32 and ids.min() >= tokenizers.NUM_SPECIAL
    assert len(ids) == len(UNICODE.encode("utf-8"))  # one token per UTF-8 byte
    assert tok.decode(ids) == UNICODE
    # Specials are dropped on decode and carry no bytes.
    assert tok.decode(np.concatenate([[tok.cls_id], ids, [tok.eos_id, tok.pad_id]])) == UNICODE
    assert tok.token_bytes()[ids].sum() == len(UNICODE.encode("utf-8"))
    assert tok.token_bytes()[: tokenizers.NUM_SPECIAL].sum() == 0
    assert tok.is_space()[tok.encode(" \n\t")].all() and not tok.is_space()[tok.encode("a")].any()


def test_bpe_train_save_reload_round_trip(tmp_path):
    docs = [pydoc.topics()[k] for k in sorted(pydoc.topics())[:10]]
    path = str(tmp_path / "tokenizer.json")
    trained = tokenizers.train_bpe(docs, 1000, path)
    tok = tokenizers.get_tokenizer(path)  # reloaded from the file
    assert tok.vocab_size == trained.vocab_size <= 1000
    for i, name in enumerate(tokenizers.SPECIAL_TOKENS):
        assert tok._tok.token_to_id(name) == i
    for s in (UNICODE, docs[0][:500]):
        ids = tok.encode(s)
        assert tok.decode(ids) == s
        assert tok.token_bytes()[ids].sum() == len(s.encode("utf-8"))  # bits-per-byte table
    assert len(tok.encode(docs[0])) < 0.6 * len(docs[0].encode("utf-8"))  # it compresses
    assert tokenizers.get_tokenizer(str(tmp_path)).vocab_size == tok.vocab_size  # workdir form
    with pytest.raises(FileNotFoundError, match="train_tokenizer"):
        tokenizers.get_tokenizer(str(tmp_path / "missing.json"))


def test_window_source_packs_and_pads():
    tok = tokenizers.ByteTokenizer()
    stream = text.pack(["abc", "de"], tok)
    np.testing.assert_array_equal(stream, np.r_[tok.encode("abc"), 5, tok.encode("de"), 5])
    src = text.WindowSource(stream, seq_len=4, stride=2, name="t")
    assert len(src) == 3  # starts 0, 2, 4; the last reaches the end of the 7 tokens
    np.testing.assert_array_equal(src[1]["tokens"], stream[2:6])
    last = src[2]
    np.testing.assert_array_equal(last["tokens"], np.r_[stream[4:], 0])
    np.testing.assert_array_equal(last["attention_mask"], [1, 1, 1, 0])
    # stride 1: every offset, all full windows; stride = seq_len - 1 covers each target once.
    assert len(text.WindowSource(stream, 4, 1, "t")) == len(stream) - 3
    src = text.WindowSource(np.arange(100, dtype=np.int32), 9, 8, "t")
    targets = np.concatenate(
        [src[i]["tokens"][1:][src[i]["attention_mask"][1:] > 0] for i in range(len(src))]
    )
    np.testing.assert_array_equal(targets, np.arange(1, 100))


def test_pydoc_builder_split_is_deterministic_and_disjoint(tmp_path):
    table = pydoc.topics()
    split = pydoc.split_topics(table)
    assert split == pydoc.split_topics(table)
    assert not set(split["train"]) & set(split["validation"])
    assert set(split["train"]) | set(split["validation"]) == set(table)
    val_chars = sum(len(table[k]) for k in split["validation"])
    assert 0.1 <= val_chars / sum(map(len, table.values())) < 0.3
    c = tiny_text_config("causal_lm", "pydoc")
    c.dataset.data_dir = str(tmp_path)
    c.dataset.train_stride = 16
    texts = text.split_texts(c.dataset, "validation")
    assert sorted(texts) == sorted(table[k] for k in split["validation"])  # tfds order
    src = sources.get_source(c.dataset, "validation")
    n_tokens = sum(len(t.encode("utf-8")) + 1 for t in texts)  # + one [EOS] per document
    assert len(src) == -(-(n_tokens - 17) // 16) + 1
    info = sources.dataset_info(c.dataset)
    assert info.num_classes is None and info.image_shape is None
    assert (info.seq_len, info.vocab_size) == (17, 262)


def test_text_file_source_splits_90_10(tmp_path):
    path = corpus_file(tmp_path)
    with open(path, encoding="utf-8") as f:
        full = f.read()
    train, val = text.file_texts(path, "train"), text.file_texts(path, "validation")
    assert train[0] + val[0] == full and len(val[0]) == len(full) - int(0.9 * len(full))
    c = tiny_text_config("mlm", f"text:{path}")
    rec = sources.get_source(c.dataset, "train")[0]
    assert rec["tokens"].dtype == np.int32 and rec["tokens"].shape == (17,)
    assert tokenizers.ByteTokenizer().decode(rec["tokens"]) == full[:17]


def test_tfds_text_dataset_by_name_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
        c = tiny_text_config("mlm", "imdb_reviews")
        c.dataset.data_dir = str(tmp_path)
        c.dataset.test_split = "test"
        src = sources.get_source(c.dataset, "train")
        rec = src[0]
        assert set(rec) == {"tokens", "attention_mask", "label"}
        assert rec["tokens"][0] == tokenizers.CLS_ID
        n = int(rec["attention_mask"].sum())
        assert rec["tokens"][n - 1] == tokenizers.SEP_ID and (rec["tokens"][n:] == 0).all()
        assert sources.dataset_info(c.dataset).num_classes == 2
        batch = next(pipeline.train_iterator(src, global_batch_size=4, seed=0))
        assert batch["tokens"].shape == (4, 17) and batch["label"].dtype == np.int32


def test_pipeline_batches_text_records_and_pads_eval(tmp_path):
    c = tiny_text_config("causal_lm", f"text:{corpus_file(tmp_path)}")
    src = sources.get_source(c.dataset, "validation")
    batches = list(pipeline.eval_batches(src, batch_size=64))
    seen = np.concatenate([b["tokens"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(seen, np.stack([src[i]["tokens"] for i in range(len(src))]))
    assert batches[-1]["attention_mask"][~batches[-1]["mask"]].sum() == 0


@pytest.mark.parametrize(
    "override, match",
    [
        ({"model.max_len": 8}, "model.max_len"),
        ({"model.vocab_size": 100}, "vocab_size"),
        ({"dataset.tokenizer": "/nonexistent/tokenizer.json"}, "train_tokenizer"),
        ({"model.causal": False}, "causal"),
        ({"dataset.seq_len": 1}, "seq_len"),
        ({"dataset.train_stride": 99}, "train_stride"),
    ],
)
def test_text_config_errors(tmp_path, override, match):
    c = tiny_text_config("causal_lm", f"text:{corpus_file(tmp_path)}")
    validate.validate(c)  # the unmodified tiny config is valid
    for k, v in override.items():
        node = c
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    with pytest.raises(ConfigError, match=match):
        validate.validate(c)
