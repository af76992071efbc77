"""Host input throughput of JPEG datasets: decode + resize (PIL) through grain, vs worker count.

A JPEG dataset (tfds imagenet2012 and the like, or a folder of files) costs the host one JPEG
decode and one resize per image before the uint8 batch reaches the device: jaxssl makes it a
dataset.image_size square with PIL (jaxssl/data/images.py: dataset.resize "whole", the longer
side to N on an edge-padded canvas, or "crop", the shorter side to N and the centre square),
in grain's read threads (pipeline._READ: 8 threads, each reading whole batches), through
sources.ExampleSource.
This script builds a temporary folder of ImageNet-like JPEGs (CIFAR-10 images upscaled to
500x375 / 375x500 with added texture, quality 90, about 100 KB each, written by PIL), reads
them as an image-folder source. T = 8 read threads is jaxssl's own pipeline.train_iterator
with dataset.num_workers = K (K > 0: grain worker processes, mp_prefetch over whole batches);
T = 1 is grain's per-example chain by hand (MapDataset.source -> shuffle -> repeat -> map ->
to_iter_dataset(ReadOptions(num_threads=1)) -> batch, then mp_prefetch(K) for K > 0), to show
what the threads alone give.

Printed: images/s of a bare single-threaded decode+resize loop (one core), then for each
(workers K, read threads T) the median images/s over interleaved repeats (worker start-up
and the first batches excluded), and images/s per core. Last line:
  ratios: bare_whole_over_crop=W k2_over_k0_threads1=X k2_over_k0_jaxssl=Y
(W: images/s of the bare loop with dataset.resize "whole" / "crop"; X, Y: K=2 / K=0)

  python benchmarks/input_pipeline.py                                   # full measurement
  python benchmarks/input_pipeline.py --images 200 --batches 2 --repeats 1   # smoke test
"""

import argparse
import io
import os
import pathlib
import shutil
import sys
import tempfile
import time

import grain
import numpy as np
from absl import flags as absl_flags
from PIL import Image, ImageFilter

from jaxssl.data import pipeline, sources

ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_train_subset_10k.npz"
SIZES = ((500, 375), (375, 500))  # (width, height): the commonest ImageNet shapes


class JpegFolderSource:
    """Random access to a folder of JPEG files: {"image": uint8 HWC as decoded, "label"}."""

    def __init__(self, paths: list[str]):
        self._paths = paths

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> dict:
        path = self._paths[index]
        with open(path, "rb") as f:
            data = f.read()
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        return {"image": image, "label": int(os.path.basename(path)[:1])}

    def __repr__(self) -> str:
        return f"JpegFolderSource(n={len(self)})"


def make_folder(folder: pathlib.Path, count: int, cifar: pathlib.Path, seed: int = 0) -> None:
    """count JPEGs of ImageNet-like size and file size in folder (names start with the label)."""
    data = np.load(cifar)
    images, labels = data["image"], data["label"]
    rng = np.random.default_rng(seed)
    # A few texture fields (blurred + fine noise) reused with random shifts: ImageNet-like detail.
    textures = {}
    for w, h in SIZES:
        fields = []
        for _ in range(4):
            coarse = np.clip(128 + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
            coarse = np.asarray(Image.fromarray(coarse).filter(ImageFilter.GaussianBlur(1.0)))
            fields.append((coarse.astype(np.float32) - 128) * 2.8 + rng.normal(0, 7, (h, w, 3)))
        textures[(w, h)] = fields
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        w, h = SIZES[i % 2]
        j = i % len(images)
        big = np.asarray(Image.fromarray(images[j]).resize((w, h), Image.BICUBIC), np.float32)
        field = textures[(w, h)][rng.integers(4)]
        field = np.roll(field, (rng.integers(h), rng.integers(w)), axis=(0, 1))
        pixels = np.clip(big + field, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{labels[j]}_{i:06d}.jpg", "JPEG", quality=90)


def example(ex: dict) -> dict:
    """pipeline._example: uint8 image + int32 label."""
    return {"image": np.asarray(ex["image"]), "label": np.int32(ex["label"])}


def make_iterator(source, batch: int, workers: int, threads: int):
    if threads == pipeline._READ.num_threads:  # jaxssl's own stream, dataset.num_workers=workers
        return pipeline.train_iterator(
            source,
            global_batch_size=batch,
            seed=0,
            shard_index=0,
            shard_count=1,
            num_workers=workers,
        )
    ds = grain.MapDataset.source(source).shuffle(seed=0).repeat(None).map(example)
    read = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * batch)
    ds = ds.to_iter_dataset(read).batch(batch, drop_remainder=True)
    if workers > 0:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(ds)


def images_per_second(source, args, workers: int, threads: int) -> float:
    it = make_iterator(source, args.batch, workers, threads)
    try:
        for _ in range(args.warmup):  # worker start-up, read-ahead buffers filling
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            b = next(it)
            assert b["image"].shape == (args.batch, args.size, args.size, 3), b["image"].shape
        return args.batches * args.batch / (time.perf_counter() - start)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def bare_rate(source, count: int) -> float:
    """Decode + resize in a plain loop, one thread: the per-core cost of one image."""
    start = time.perf_counter()
    for i in range(count):
        source[i]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="JPEG files to create")
    parser.add_argument("--folder", type=pathlib.Path, help="reuse/keep this folder")
    parser.add_argument("--size", type=int, default=224, help="dataset.image_size")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=24, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=12, help="untimed: start-up, buffers drained")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--workers", default="0,1,2", help="mp_prefetch num_workers values")
    parser.add_argument("--threads", default="1,8", help="ReadOptions.num_threads values")
    parser.add_argument("--cifar", type=pathlib.Path, default=CIFAR)
    parser.add_argument("--resize", default="whole", help="dataset.resize of the grain grid")
    args = parser.parse_args()
    absl_flags.FLAGS(sys.argv[:1])  # grain reads absl flags (as under jaxssl.main's app.run)
    workers = [int(k) for k in args.workers.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    tmp = None
    folder = args.folder
    if folder is None:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="jpeg_bench_"))
        folder = tmp
    try:
        paths = sorted(str(p) for p in folder.glob("*.jpg"))
        if len(paths) < args.images:
            t = time.perf_counter()
            make_folder(folder, args.images, args.cifar)
            paths = sorted(str(p) for p in folder.glob("*.jpg"))
            print(f"wrote {len(paths)} JPEGs to {folder} in {time.perf_counter() - t:.1f}s")
        paths = paths[: args.images]
        mean_kb = np.mean([os.path.getsize(p) for p in paths]) / 1e3
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        load = os.getloadavg()[0]
        print(
            f"{len(paths)} JPEGs, 500x375 and 375x500, mean {mean_kb:.0f} KB; dataset.resize"
            f" {args.resize} to {args.size}; batch {args.batch}; {cores} cores, load average"
            f" {load:.2f}; grain {grain.__version__ if hasattr(grain, '__version__') else ''}"
        )

        def source_of(mode):
            # cache_bytes=0: every read decodes, as for a split too big to keep (ImageNet).
            return sources.ExampleSource(
                JpegFolderSource(paths), "jpeg_folder", args.size, mode, cache_bytes=0
            )

        bare_rate(source_of("crop"), 8)  # page cache, PIL plugin import
        bare = {}
        for _ in range(args.repeats):  # interleaved: the two host resizes of dataset.resize
            for mode in ("whole", "crop"):
                bare.setdefault(mode, []).append(
                    bare_rate(source_of(mode), min(len(paths), 20 * args.batches))
                )
        bare = {m: float(np.median(v)) for m, v in bare.items()}
        for mode, rate in bare.items():
            print(f"bare loop, 1 thread (decode + resize {mode}, per core): {rate:.0f} images/s")
        source = source_of(args.resize)

        configs = [(k, t) for t in threads for k in workers]
        rates = {c: [] for c in configs}
        for _ in range(args.repeats):
            for k, t in configs:
                rates[(k, t)].append(images_per_second(source, args, k, t))
        med = {c: float(np.median(v)) for c, v in rates.items()}
        for (k, t), v in rates.items():
            name = f"jaxssl num_workers={k}" if t == 8 else f"by hand workers={k} threads={t}"
            print(
                f"{name:34s}: {med[(k, t)]:7.0f} images/s, per core"
                f" {med[(k, t)] / cores:6.0f} (all: {[round(x) for x in v]})"
            )
        parts = [f"bare_whole_over_crop={bare['whole'] / bare['crop']:.3f}"]
        for t in threads:
            if 0 in workers and 2 in workers:
                label = "jaxssl" if t == 8 else f"threads{t}"
                parts.append(f"k2_over_k0_{label}={med[(2, t)] / med[(0, t)]:.3f}")
        print("ratios: " + " ".join(parts))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
