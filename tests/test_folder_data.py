"""folder:DIR datasets: real JPEG and PNG files written by PIL, decoded on the host."""

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxssl.data import sources
from jaxssl.data.tfds_io import DatasetError

from .helpers import tiny_simclr_config

COLOURS = {"bright": 220, "dark": 30}


def _write(path, size, value, fmt, gray=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    shape = (size[1], size[0]) if gray else (size[1], size[0], 3)
    pixels = np.clip(value + rng.integers(-20, 20, shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return pixels


@pytest.fixture(scope="module")
def imagenet_layout(tmp_path_factory):
    """train/{bright,dark}/ (8 each) and val/ (4 each): JPEG and PNG, sizes varying."""
    root = tmp_path_factory.mktemp("images")
    for split, n in (("train", 8), ("val", 4)):
        for cls, value in COLOURS.items():
            for i in range(n):
                size = (10 + i % 3, 12 - i % 2)  # width, height: varies
                fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
                _write(root / split / cls / f"{i}.{ext}", size, value, fmt)
    (root / "train" / "bright" / ".DS_Store").write_text("not an image")
    return root


def _cfg(name, **kw):
    return ml_collections.ConfigDict({"name": name, "train_split": "train", **kw})


def test_splits_layout_labels_and_test_split_maps_to_val(imagenet_layout):
    cfg = _cfg(f"folder:{imagenet_layout}", test_split="test", image_size=8)
    info = sources.dataset_info(cfg)
    assert info.num_classes == 2 and info.image_shape == (8, 8, 3)
    assert dict(info.split_sizes) == {"train": 16, "test": 8}  # test/ absent: val/ is used
    test = sources.get_source(cfg, "test")
    labels = [test[i]["label"] for i in range(len(test))]
    assert labels == [0] * 4 + [1] * 4  # classes sorted: bright=0, dark=1
    example = test[0]
    assert example["image"].dtype == np.uint8 and example["image"].shape == (8, 8, 3)
    assert abs(int(example["image"].mean()) - COLOURS["bright"]) < 25  # decoded, not noise


def test_varying_sizes_need_image_size(imagenet_layout):
    with pytest.raises(DatasetError, match="has images of different sizes .*image_size=N"):
        sources.dataset_info(_cfg(f"folder:{imagenet_layout}"))


def test_png_decodes_exactly_and_grayscale_is_one_channel(tmp_path):
    pixels = [
        _write(tmp_path / "g" / "c" / f"{i}.png", (6, 5), 100, "PNG", gray=True) for i in range(3)
    ]
    cfg = _cfg(f"folder:{tmp_path / 'g'}")
    info = sources.dataset_info(cfg)  # classes layout: 10% (at least one) held out
    assert info.image_shape == (5, 6, 1) and dict(info.split_sizes) == {"train": 2, "test": 1}
    train, test = sources.get_source(cfg, "train"), sources.get_source(cfg, "test")
    got = sorted(
        [train[0]["image"][..., 0], train[1]["image"][..., 0], test[0]["image"][..., 0]],
        key=lambda a: a.tobytes(),
    )
    want = sorted(pixels, key=lambda a: a.tobytes())
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)  # PNG is lossless: the very pixels written


def test_flat_folder_is_unlabelled_train_only(tmp_path):
    for i in range(3):
        _write(tmp_path / f"{i}.png", (4, 4), 50, "PNG")
    cfg = _cfg(f"folder:{tmp_path}", test_split="test")
    info = sources.dataset_info(cfg)
    assert info.num_classes is None and dict(info.split_sizes) == {"train": 3, "test": 0}
    assert "label" not in sources.get_source(cfg, "train")[0]
    with pytest.raises(DatasetError, match="only a 'train' split"):
        sources.get_source(cfg, "test")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: _write(r / "train" / "x.png", (4, 4), 0, "PNG"), "outside class folders"),
        (
            lambda r: (
                _write(r / "train" / "a" / "0.png", (4, 4), 0, "PNG"),
                _write(r / "val" / "b" / "0.png", (4, 4), 0, "PNG"),
            ),
            r"class folders \['b'\] that train/ lacks",
        ),
        (lambda r: (r / "empty").mkdir(), "holds no images"),
    ],
    ids=["loose image", "val class not in train", "no images"],
)
def test_malformed_folders_are_named(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DatasetError, match=message):
        sources.dataset_info(_cfg(f"folder:{tmp_path}"))


def test_unreadable_image_names_the_file(tmp_path):
    _write(tmp_path / "train" / "a" / "0.png", (4, 4), 0, "PNG")
    (tmp_path / "train" / "a" / "1.jpg").write_bytes(b"not a jpeg")
    cfg = _cfg(f"folder:{tmp_path}", image_size=4, test_split="train")
    source = sources.get_source(cfg, "train")
    with pytest.raises(DatasetError, match="1.jpg: not a readable image"):
        source[1]


def _folder_config(tmp_path, name):
    config = tiny_simclr_config(str(tmp_path / "data"))
    config.dataset.name = name
    config.dataset.image_size = 8
    config.batch_size = 8
    config.total_steps = 2
    config.eval.batch_size = 8
    config.augment.image_size = 8
    config.augment.mean = (0.5, 0.5, 0.5)
    config.augment.std = (0.25, 0.25, 0.25)
    return config


def test_pretrain_and_evaluate_on_an_image_folder(imagenet_layout, tmp_path):
    from jaxssl import jobs

    config = _folder_config(tmp_path, f"folder:{imagenet_layout}")
    # Mixed sizes resized whole (batches carry image_hw), read by a grain worker process.
    config.dataset.num_workers = 1
    jobs.prepare(config)
    summary = jobs.run(config, str(tmp_path / "run"))
    assert summary["steps"] == 2
    assert summary["eval_protocol"]["test_examples"] == 8  # val/ was evaluated on
    assert summary["knn_top1"] >= 0.75  # bright vs dark is easy even for a random encoder


def test_pretrain_on_a_flat_folder_skips_evaluation(tmp_path, capsys):
    from jaxssl import jobs

    for i in range(8):
        _write(tmp_path / "flat" / f"{i}.jpg", (9 + i % 2, 9), 40 * i, "JPEG")
    config = _folder_config(tmp_path, f"folder:{tmp_path / 'flat'}")
    jobs.prepare(config)
    summary = jobs.run(config, str(tmp_path / "run"))
    assert summary["steps"] == 2 and "knn_top1" not in summary
    assert "no evaluation: folder:" in capsys.readouterr().out
