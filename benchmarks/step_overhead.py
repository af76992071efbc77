"""Full SimCLR train step vs a bare encoder forward+backward on pre-augmented views.

configs/simclr_cifar10_resnet18.py (ResNet-18 CIFAR stem, SimCLR CIFAR views, LARS) at 128
uint8 32x32 colour images per step, so 256 views, online probe off, on random images (an
npz: file this script writes). The full step is the run's own (pretrain.build,
skeleton.init_state, skeleton.jit_step): both views augmented on device, encoder + projection
head + NT-Xent + the LARS update; the bare step runs the encoder forward+backward on 256 views
augmented beforehand. Both jitted, medians of several steps after warm-up, interleaved in one
run so machine noise hits both alike. Last line: the ratio.

  python benchmarks/step_overhead.py [--steps 5] [--batch 128]
"""

import argparse
import os
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from throughput import build_step  # benchmarks/ is the script's folder

from jaxssl import api
from jaxssl import sharding as mesh_lib
from jaxssl.augment import views

ROOT = pathlib.Path(__file__).resolve().parents[1]


def median_time(fn, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.batch, 32, 32, 3), dtype=np.uint8)
    data = os.path.join(tempfile.mkdtemp(prefix="jaxssl_step_overhead_"), "random.npz")
    np.savez(data, image=images, label=np.zeros(args.batch, np.int64))
    config = api.load_config(
        str(ROOT / "configs" / "simclr_cifar10_resnet18.py"),
        {"batch_size": args.batch, "dataset.name": f"npz:{data}", "method.online_probe": False},
    )
    mesh = mesh_lib.make_mesh()
    batch = mesh_lib.to_global_batch(
        {"image": images, "label": np.zeros(args.batch, np.int32)}, mesh
    )
    parts, state, full_step = build_step(config, mesh)
    method = parts.method

    # Bare encoder: forward + backward on the same 256 views, augmented once beforehand.
    v1, v2 = jax.jit(lambda k, x: views.batch_views(k, x, config.augment))(
        jax.random.PRNGKey(1), batch["image"]
    )
    augmented = jnp.concatenate([v1, v2])
    enc = method.encoder
    # Copies: the full step donates (and so deletes) the state's buffers.
    enc_vars = jax.tree.map(
        jnp.copy,
        {
            "params": state.params["encoder"],
            "batch_stats": state.model_state["batch_stats"]["encoder"],
        },
    )

    @jax.jit
    def bare(variables, x):
        def loss(p):
            out, upd = enc.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
            return jnp.sum(out[0]), upd

        return jax.grad(loss, has_aux=True)(variables["params"])

    holder = {"state": state}

    def run_full():
        holder["state"], metrics = full_step(holder["state"], batch)
        return metrics["loss"]

    def run_bare():
        return bare(enc_vars, augmented)

    t = time.perf_counter()
    jax.block_until_ready(run_full())
    jax.block_until_ready(run_bare())
    print(f"compile+first steps: {time.perf_counter() - t:.1f}s")
    full, bare_t = [], []
    for _ in range(args.steps):  # interleave so background load hits both equally
        full += median_time(run_full, 1)
        bare_t += median_time(run_bare, 1)
    f, b = float(np.median(full)), float(np.median(bare_t))
    print(
        f"devices={jax.device_count()} ({jax.devices()[0].platform}) "
        f"images/step={args.batch} views={2 * args.batch}"
    )
    print(f"full SimCLR step median: {f * 1e3:.1f} ms  (all: {[round(x, 3) for x in full]})")
    print(f"bare encoder fwd+bwd median: {b * 1e3:.1f} ms  (all: {[round(x, 3) for x in bare_t]})")
    print(f"ratio full/bare: {f / b:.3f}")


if __name__ == "__main__":
    main()
