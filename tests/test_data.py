"""Data layer: digits builder, sources (digits / npz / tfds by name), grain pipelines, resume."""

import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from jaxssl.data import digits, pipeline, sources


def _cfg(name: str, data_dir=None, **kw) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {"name": name, "data_dir": data_dir, "train_split": "train", "test_split": "test", **kw}
    )


def _indexed_source(n: int) -> sources.ArraySource:
    """Example i has every pixel = i and label i, so batches reveal which examples they hold."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 3))
    return sources.ArraySource(images, np.arange(n), np.arange(n), "indexed")


def _ids(batch: dict) -> list[int]:
    return batch["label"].tolist()


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfds")
    digits.prepare_digits(path)
    return path


def test_a_second_prepare_waits_for_the_first_then_finds_it_prepared(tmp_path):
    """Two runs started at once on a fresh machine: the later waits (no tfds rename race)."""
    import threading

    from jaxssl.data import quiet

    folder = str(tmp_path / "sklearn_digits")
    done = []
    with quiet.exclusive(folder):  # what the first run holds while it prepares
        waiter = threading.Thread(target=lambda: done.append(digits.prepare_digits(tmp_path)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not list(tmp_path.rglob("*.array_record*"))
    waiter.join(timeout=60)
    assert done and digits.digits_builder(tmp_path).is_prepared()


def test_digits_builder_splits_match_sklearn(digits_dir):
    files = sorted(p.stat().st_mtime_ns for p in digits_dir.rglob("*.array_record*"))
    digits.prepare_digits(digits_dir)  # idempotent: nothing is rewritten
    assert sorted(p.stat().st_mtime_ns for p in digits_dir.rglob("*.array_record*")) == files
    ref = load_digits()
    builder = digits.digits_builder(digits_dir)
    seen = {}
    for split, size in (("train", 1438), ("test", 359)):
        src = builder.as_data_source(split=split)
        assert len(src) == size
        for i in range(len(src)):
            ex = src[i]
            k = int(ex["index"])
            assert k not in seen
            seen[k] = split
            assert ex["image"].dtype == np.uint8 and ex["image"].shape == (8, 8, 1)
            want = np.round(ref.images[k] * 255 / 16).astype(np.uint8)
            np.testing.assert_array_equal(ex["image"][..., 0], want)
            assert int(ex["label"]) == ref.target[k]
    assert sorted(seen) == list(range(1797))
    want_test = digits.split_indices()["test"]
    assert sorted(k for k, s in seen.items() if s == "test") == want_test.tolist()


def test_digits_source_and_info(digits_dir):
    cfg = _cfg("digits", str(digits_dir))
    ex = sources.get_source(cfg, "test")[0]
    assert ex["image"].dtype == np.uint8 and ex["image"].shape == (8, 8, 1)
    assert isinstance(ex["label"], int) and 0 <= ex["label"] < 10
    info = sources.dataset_info(cfg)
    assert (info.num_classes, info.image_shape) == (10, (8, 8, 1))
    assert dict(info.split_sizes) == {"train": 1438, "test": 359}
    sources.check_dataset(cfg)


def test_npz_with_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        image=rng.integers(0, 256, (30, 6, 5), dtype=np.uint8),  # NHW: gets C=1
        label=np.arange(30) % 4,
        test_image=rng.integers(0, 256, (7, 6, 5), dtype=np.uint8),
        test_label=np.full(7, 6),
    )
    cfg = _cfg(f"npz:{path}")
    train, test = sources.get_source(cfg, "train"), sources.get_source(cfg, "test")
    assert (len(train), len(test)) == (30, 7)
    assert train[3]["image"].shape == (6, 5, 1) and train[3]["label"] == 3
    info = sources.dataset_info(cfg)
    assert (info.num_classes, info.image_shape) == (7, (6, 5, 1))
    assert dict(info.split_sizes) == {"train": 30, "test": 7}


def test_npz_holdout_is_fixed_disjoint_ten_percent(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, image=_indexed_source(200)._images, label=np.arange(200))
    cfg = _cfg(f"npz:{path}")
    train, test = sources.get_source(cfg, "train"), sources.get_source(cfg, "test")
    train_ids = [train[i]["label"] for i in range(len(train))]
    test_ids = [test[i]["label"] for i in range(len(test))]
    assert (len(train_ids), len(test_ids)) == (180, 20)
    assert not set(train_ids) & set(test_ids) and len(set(train_ids + test_ids)) == 200
    assert test_ids == [sources.get_source(cfg, "test")[i]["label"] for i in range(20)]
    assert test_ids == sources.npz_holdout(200)["test"].tolist()
    assert test[0]["image"][0, 0, 0] == test_ids[0]  # images travel with their labels


@pytest.mark.parametrize(
    "arrays, match",
    [
        (None, "not found"),
        ({"images": np.zeros((4, 2, 2), np.uint8), "label": np.zeros(4, int)}, "needs 'image'"),
        ({"image": np.zeros((4, 2, 2), np.float32), "label": np.zeros(4, int)}, "uint8"),
        ({"image": np.zeros((4, 2), np.uint8), "label": np.zeros(4, int)}, "NHW or NHWC"),
        ({"image": np.zeros((4, 2, 2), np.uint8), "label": np.zeros(3, int)}, "3"),
        ({"image": np.zeros((4, 2, 2), np.uint8), "label": np.zeros(4)}, "integer"),
        (
            {
                "image": np.zeros((4, 2, 2), np.uint8),
                "label": np.zeros(4, int),
                "test_image": np.zeros((2, 2, 2), np.uint8),
            },
            "test_label",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    if arrays is not None:
        np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as err:
        sources.check_dataset(_cfg(f"npz:{path}"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_tfds_by_name_with_mock_data(tmp_path, name, shape):
    cfg = _cfg(name, str(tmp_path))
    with tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE):
        src = sources.get_source(cfg, "train")
        ex = src[5]
        info = sources.dataset_info(cfg)
        batch = next(
            pipeline.train_iterator(src, global_batch_size=4, seed=0, shard_count=1, shard_index=0)
        )
    assert len(src) == 12 and ex["image"].dtype == np.uint8 and ex["image"].shape == shape
    assert isinstance(ex["label"], int) and 0 <= ex["label"] < 10
    assert (info.num_classes, info.image_shape) == (10, shape)
    assert batch["image"].shape == (4, *shape) and batch["label"].dtype == np.int32


def test_variable_size_tfds_images_need_image_size(tmp_path):
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        with pytest.raises(ValueError, match="image_size"):
            sources.check_dataset(_cfg("imagenet2012", str(tmp_path)))
        cfg = _cfg("imagenet2012", str(tmp_path), image_size=16)
        assert sources.dataset_info(cfg).image_shape == (16, 16, 3)
        src = sources.get_source(cfg, "train")
        assert {src[i]["image"].shape for i in range(4)} == {(16, 16, 3)}
    gray = sources.resize_center_crop(np.zeros((10, 30, 1), np.uint8), 6)
    assert gray.shape == (6, 6, 1) and gray.dtype == np.uint8


def test_unprepared_and_unknown_tfds_errors(tmp_path):
    with pytest.raises(ValueError) as err:
        sources.check_dataset(_cfg("cifar10", str(tmp_path)))
    msg = str(err.value)
    assert "cifar10" in msg and str(tmp_path) in msg and "tfds build cifar10" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match="unknown dataset 'no_such_set'"):
        sources.check_dataset(_cfg("no_such_set", str(tmp_path)))


def _take(it, k):
    return [next(it) for _ in range(k)]


def test_train_iterator_shapes_and_determinism():
    src = _indexed_source(50)
    kw = {"global_batch_size": 8, "shard_index": 0, "shard_count": 2}
    a = _take(pipeline.train_iterator(src, seed=3, **kw), 15)
    b = _take(pipeline.train_iterator(src, seed=3, **kw), 15)
    c = _take(pipeline.train_iterator(src, seed=4, **kw), 15)
    assert a[0]["image"].shape == (4, 4, 4, 3) and a[0]["image"].dtype == np.uint8
    assert a[0]["label"].shape == (4,) and a[0]["label"].dtype == np.int32
    assert [_ids(x) for x in a] == [_ids(x) for x in b]
    assert [_ids(x) for x in a] != [_ids(x) for x in c]
    np.testing.assert_array_equal(a[0]["image"][:, 0, 0, 0], a[0]["label"])
    ids = sum((_ids(x) for x in a), [])
    assert ids[:25] != ids[25:50]  # infinite, with a fresh shuffle in the second epoch


def test_train_iterator_shards_are_blocks_of_the_global_batch():
    src = _indexed_source(50)
    shards = [
        sum(
            (
                _ids(x)
                for x in _take(
                    pipeline.train_iterator(
                        src, global_batch_size=8, seed=0, shard_index=i, shard_count=2
                    ),
                    13,
                )
            ),
            [],
        )
        for i in range(2)
    ]
    # Process p holds rows [4p, 4p + 4) of each global batch: the assembled batch is the
    # single-process one row for row, so per-row augmentation keys see the same examples.
    whole = _take(
        pipeline.train_iterator(src, global_batch_size=8, seed=0, shard_index=0, shard_count=1), 13
    )
    stream = sum((_ids(b) for b in whole), [])
    for step in range(13):
        assert (
            _ids(whole[step])
            == shards[0][4 * step : 4 * step + 4] + shards[1][4 * step : 4 * step + 4]
        )
    for epoch in range(2):  # every epoch of the global stream is a permutation
        assert sorted(stream[50 * epoch : 50 * (epoch + 1)]) == list(range(50))


def test_train_stream_is_grains_shuffle_of_the_source():
    """The batch-at-a-time stream visits examples in the order of grain's own per-example
    `shuffle(seed).repeat()` (runs, checkpoints and README figures keep their batches)."""
    src = _indexed_source(50)
    seed = pipeline._shuffle_seed(7)
    grains = grain.MapDataset.source(src).shuffle(seed=seed).repeat(None)
    expected = [grains[i]["label"] for i in range(8 * 20)]
    stream = _take(pipeline.train_iterator(src, global_batch_size=8, seed=7, shard_count=1), 20)
    assert sum((_ids(b) for b in stream), []) == expected


@pytest.mark.parametrize("workers", [0, 2])
def test_iterator_resumes_exactly_with_orbax(tmp_path, workers):
    """With grain worker processes too (dataset.num_workers): same batches, same resume."""
    src = _indexed_source(50)

    def fresh(num_workers=workers):
        return pipeline.train_iterator(
            src, global_batch_size=8, seed=1, shard_index=0, shard_count=1, num_workers=num_workers
        )

    def manager():
        return ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",))

    it = fresh()
    _take(it, 3)
    with manager() as mngr:
        mngr.save(3, args=ocp.args.Composite(data=pipeline.iterator_save_arg(it)))
        mngr.wait_until_finished()
    expected = [_ids(x) for x in _take(it, 10)]
    # Workers or not, the batches in order are those of the in-process pipeline.
    assert expected == [_ids(x) for x in _take(fresh(0), 13)[3:]]
    with manager() as mngr:
        restored = mngr.restore(
            3, args=ocp.args.Composite(data=pipeline.iterator_restore_arg(fresh()))
        )
    assert [_ids(x) for x in _take(restored["data"], 10)] == expected


@pytest.mark.parametrize("shard_count", [1, 3])
def test_eval_batches_cover_every_example_once(shard_count):
    src = _indexed_source(50)
    runs = [
        list(pipeline.eval_batches(src, batch_size=8, shard_index=i, shard_count=shard_count))
        for i in range(shard_count)
    ]
    assert len({len(r) for r in runs}) == 1  # same number of batches on every host
    seen = []
    for run in runs:
        ids = []
        for b in run:
            assert b["image"].shape == (8, 4, 4, 3) and b["label"].dtype == np.int32
            assert b["mask"].dtype == bool and b["mask"].shape == (8,)
            ids += b["label"][b["mask"]].tolist()
            assert not b["label"][~b["mask"]].any()
        assert ids == sorted(ids)  # in order
        seen += ids
    assert sorted(seen) == list(range(50))


class _CountingSource:
    """tfds-like records (grey HW images, numpy labels) that count how often each is read."""

    def __init__(self, n: int):
        self.images = np.random.default_rng(0).integers(0, 256, (n, 5, 6), dtype=np.uint8)
        self.reads = np.zeros(n, int)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        self.reads[i] += 1
        return {"image": self.images[i], "label": np.int64(i % 3)}


def test_small_splits_are_decoded_once_and_kept_unchanged():
    raw = _CountingSource(10)
    source = sources.ExampleSource(raw, "counting")  # 10 * (30 + 8) bytes: kept
    first = [source[i] for i in range(10)]
    first[3]["image"] = np.zeros((5, 6, 1), np.uint8)  # a caller editing its dict ...
    with pytest.raises(ValueError, match="read-only"):  # ... or a kept array in place
        first[4]["image"][0, 0, 0] = 1
    again = [source[i] for i in reversed(range(10))][::-1]
    assert raw.reads.tolist() == [1] * 10  # ... and the second epoch read nothing
    for i, ex in enumerate(again):
        np.testing.assert_array_equal(ex["image"], raw.images[i][..., None])  # ... unchanged
        assert ex["label"] == i % 3 and isinstance(ex["label"], int)


def test_splits_over_the_cache_budget_are_read_every_time():
    raw = _CountingSource(10)
    source = sources.ExampleSource(raw, "counting", cache_bytes=10 * 38 - 1)
    for _ in range(2):
        for i in range(10):
            np.testing.assert_array_equal(source[i]["image"], raw.images[i][..., None])
    assert raw.reads.tolist() == [2] * 10
