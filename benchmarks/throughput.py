"""Train-step throughput and model FLOP utilisation of a config, on whatever devices jax sees.

Builds the pre-training job's own parts (`pretrain.build`, `skeleton.init_state`,
`skeleton.jit_step`: the config's method, augmentations, optimizer and precision, sharded over
all devices) and times the jitted step on one batch the job's input pipeline made, kept on the
devices, so the figure is the step alone (the data-wait fraction of real runs is logged by every
job as `data_wait_fraction`). FLOPs per step are XLA's count for the compiled step
(`cost_analysis`: everything the step computes, augmentation and optimizer included); MFU = those
FLOPs per second over the devices' peak (`--peak-tflops`, or the table below for known GPUs).

  python benchmarks/throughput.py --config configs/simclr_imagenet_resnet50.py --jpegs 64 \
      --set batch_size=32 --steps 3          # ResNet-50 SimCLR at 224 x 224, CPU: about 4 min
  # on a GPU (bf16, the batch the device holds):
  python benchmarks/throughput.py --config configs/simclr_imagenet_resnet50.py --jpegs 512 \
      --set batch_size=256 --set precision=bfloat16 --steps 20
  python benchmarks/throughput.py --config configs/mae_vit_base_imagenet.py --jpegs 512 \
      --set batch_size=256 --set precision=bfloat16 --steps 20
  python benchmarks/throughput.py --config configs/simclr_cifar10_resnet18.py --jpegs 512 \
      --jpeg-size 32 --set batch_size=512 --set precision=bfloat16 --steps 20 --epoch 50000

--jpegs N writes N random JPEGs (side --jpeg-size, default 256) to a temporary flat folder and
uses it as the dataset (`folder:`), so ImageNet and CIFAR configs run without their data.
Last line: `throughput: images_per_s=X step_ms=Y tflops_per_s=Z mfu=W` (mfu n/a without a peak).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Dense bf16 peak per device in TFLOP/s, by a substring of jax's device_kind (vendor data sheets).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "TPU v4": 275.0}


def write_jpegs(folder: str, count: int, side: int) -> None:
    """count random side x side RGB JPEGs (smooth noise, so they compress like photos)."""
    from PIL import Image

    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.BICUBIC)
        image.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def peak_tflops(device: jax.Device, given: float | None) -> float | None:
    if given:
        return given
    kind = getattr(device, "device_kind", "")
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in kind), None)


def step_flops(compiled) -> float | None:
    """XLA's FLOP count of one compiled step (None where the backend reports none)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older jax: one dict per program
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def load_config(path: str, sets: list[str]):
    """configs/... through the command line's own parser: each KEY=VALUE of sets means what
    --config.KEY=VALUE means to jaxssl (a misspelt key is refused)."""
    from jaxssl import cli

    argv = ["--config", os.path.join(ROOT, path), *(f"--config.{s}" for s in sets)]
    return cli.parse(argv, need_workdir=False)[0]


def build_step(config, mesh):
    """(the job's parts, fresh state, jitted train step) of a config, built as a run builds
    them: precision applied, pretrain.build, skeleton.init_state and skeleton.jit_step."""
    from jaxssl.train import precision, pretrain, skeleton

    parts = pretrain.build(precision.with_precision(config), mesh)
    state = skeleton.init_state(parts, config, mesh)
    return parts, state, skeleton.jit_step(parts, config, state, mesh)


def one_device_step(config, steps: int):
    """(mesh, parts, state, step, batches) of a config on one device with evaluation off:
    build_step's parts, state and step, and `steps` global batches of its training stream."""
    from jaxssl import sharding
    from jaxssl.data import pipeline

    config.eval.enabled = False
    mesh = sharding.make_mesh(jax.devices()[:1])
    parts, state, step = build_step(config, mesh)
    data = pipeline.train_iterator(
        parts.train_source, global_batch_size=config.batch_size, seed=config.seed
    )
    batches = [sharding.to_global_batch(next(data), mesh) for _ in range(steps)]
    return mesh, parts, state, step, batches


def median_seconds(fn, *args, repeats: int) -> float:
    """Median wall time of one fn(*args) call, after a compiling call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 2 untimed)")
    parser.add_argument("--jpegs", type=int, default=0, help="train on N random JPEGs")
    parser.add_argument("--jpeg-size", type=int, default=256)
    parser.add_argument("--peak-tflops", type=float, default=None, help="per device")
    parser.add_argument("--epoch", type=int, default=0, help="also print seconds per N images")
    args = parser.parse_args()

    from jaxssl import sharding
    from jaxssl.data import pipeline

    config = load_config(args.config, args.set)
    tmp = tempfile.mkdtemp(prefix="jaxssl_throughput_")
    try:
        if args.jpegs:
            write_jpegs(os.path.join(tmp, "jpegs"), args.jpegs, args.jpeg_size)
            config.dataset.name = f"folder:{os.path.join(tmp, 'jpegs')}"  # flat: no labels
        config.eval.enabled = False
        mesh = sharding.make_mesh()
        parts, state, step = build_step(config, mesh)
        data = pipeline.train_iterator(
            parts.train_source, global_batch_size=config.batch_size, seed=config.seed
        )
        batch = sharding.to_global_batch(next(data), mesh)
        start = time.perf_counter()
        compiled = step.lower(state, batch).compile()
        compile_s = time.perf_counter() - start
        for _ in range(2):  # warm-up: first runs allocate and autotune
            state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    devices = jax.devices()
    step_s = statistics.median(times)
    images_s = config.batch_size / step_s
    flops = step_flops(compiled)
    peak = peak_tflops(devices[0], args.peak_tflops)
    achieved = flops / step_s / 1e12 if flops else None
    mfu = achieved / (peak * len(devices)) if achieved and peak else None
    print(
        f"{args.config} {' '.join(args.set)}: {len(devices)} x {devices[0].device_kind}"
        f" ({jax.default_backend()}), precision {config.get('precision', 'float32')},"
        f" batch {config.batch_size}, compile {compile_s:.1f} s, loss {float(metrics['loss']):.4f}"
    )
    print(f"step {step_s * 1e3:.1f} ms (all: {[round(t * 1e3, 1) for t in times]})")
    if flops:
        print(f"XLA FLOPs per step {flops / 1e12:.3f} T, {achieved:.2f} TFLOP/s achieved")
    if args.epoch:
        print(f"{args.epoch / images_s:.1f} s per {args.epoch:,} images")
    shown = {
        "images_per_s": f"{images_s:.1f}",
        "step_ms": f"{step_s * 1e3:.1f}",
        "tflops_per_s": f"{achieved:.3f}" if achieved else "n/a",
        "mfu": f"{mfu:.3f}" if mfu else "n/a",
    }
    print("throughput: " + " ".join(f"{k}={v}" for k, v in shown.items()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
