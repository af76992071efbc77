"""Read threads handing over whole batches vs single examples: host cost and a run's data wait.

jaxssl's train stream (`pipeline.train_iterator`) is one grain MapDataset whose elements are
whole batches, read by grain's read threads and handed over once. Two earlier forms, same rows
in the same order: grain's per-example chain (`map -> to_iter_dataset(ReadOptions(num_threads=8,
prefetch_buffer_size=2B)) -> batch`, until 2026-11-25), which hands over every example; and
grain's per-example datasets batched before the threads (`shuffle -> repeat -> map -> batch ->
to_iter_dataset`, until 2026-12-07), which hands over batches but runs grain's per-example
shuffle, statistics and metrics for every row. In one process, on the embedded data:

1. host CPU and wall time per batch of the two streams alone (nothing else running): the digits
   SimCLR batch (256 8x8 images through tfds' ArrayRecord reader) and the causal-LM batch (12
   windows of 65 tokens of CPython's docs);
2. whole training runs (`api.run`, `configs/simclr_digits.py`, N steps, no evaluation),
   alternating the two streams: examples/s and the data_wait_fraction the loop logs (the share
   of wall time the host waited for the next batch while the device could have computed).

The digits stream is also read with every example parsed by tfds again (`cache_bytes=0`, as
for splits over `sources.CACHE_BYTES`; before 2026-12-07 every split). Last line:
`ratios: digits_cpu=X digits_grain_batch_cpu=G digits_kept_cpu=K lm_cpu=Y lm_grain_batch_cpu=H
run_speed=Z run_speed_vs_grain_batch=W` (per-example / per-batch host CPU per batch; grain's
per-example datasets batched / per-batch; parsed every time / kept; per-batch / per-example and
per-batch / grain-batch examples/s of the run).

  python benchmarks/batch_handoff.py                    # about 2 min on 2 cores
  python benchmarks/batch_handoff.py --steps 20 --repeats 1 --batches 5   # smoke test
"""

import argparse
import json
import pathlib
import resource
import statistics
import tempfile
import time

import grain

from jaxssl import api
from jaxssl.data import pipeline, sources

ROOT = pathlib.Path(__file__).resolve().parent.parent


def per_example_stream(source, *, global_batch_size: int, seed: int, **_):
    """grain's per-example hand-off: the chain jaxssl used before (same rows, same order)."""
    ds = grain.MapDataset.source(source).shuffle(seed=pipeline._shuffle_seed(seed)).repeat(None)
    ds = ds.map(pipeline._example)
    read = grain.ReadOptions(num_threads=8, prefetch_buffer_size=2 * global_batch_size)
    return iter(ds.to_iter_dataset(read).batch(global_batch_size, drop_remainder=True))


def grain_batch_stream(source, *, global_batch_size: int, seed: int, **_):
    """grain's per-example datasets batched before the read threads (jaxssl until 2026-12-07,
    one process)."""
    ds = grain.MapDataset.source(source).shuffle(seed=pipeline._shuffle_seed(seed)).repeat(None)
    ds = ds.map(pipeline._example).batch(global_batch_size, drop_remainder=True)
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=8, prefetch_buffer_size=8)))


STREAMS = {
    "per-example": per_example_stream,
    "grain-batch": grain_batch_stream,
    "per-batch": pipeline.train_iterator,
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def host_cost(source, batch: int, batches: int) -> dict[str, tuple[float, float]]:
    """{stream: (wall, cpu) seconds per batch}, the streams alternating, medians of 3."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in STREAMS}
    for _ in range(3):
        for name, make in STREAMS.items():
            it = make(source, global_batch_size=batch, seed=0)
            for _ in range(5):  # threads started, buffers filled
                next(it)
            wall, cpu = time.perf_counter(), cpu_seconds()
            for _ in range(batches):
                next(it)
            out[name].append(
                ((time.perf_counter() - wall) / batches, (cpu_seconds() - cpu) / batches)
            )
    return {
        name: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for name, v in out.items()
    }


def run_rates(steps: int, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """{stream: [(examples/s, data_wait_fraction) of the run's last log]} over repeats."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in STREAMS}
    original = pipeline.train_iterator
    try:
        for _ in range(repeats):
            for name, make in STREAMS.items():
                pipeline.train_iterator = make  # the skeleton looks it up at run time
                config = api.load_config(
                    str(ROOT / "configs/simclr_digits.py"),
                    {"total_steps": steps, "log_every": steps // 2, "eval.enabled": False},
                )
                with tempfile.TemporaryDirectory() as workdir:
                    api.run(config, workdir)
                    rows = [json.loads(x) for x in open(pathlib.Path(workdir, "metrics.jsonl"))]
                last = [r for r in rows if "examples_per_s" in r][-1]  # compile-free half
                out[name].append((last["examples_per_s"], last["data_wait_fraction"]))
    finally:
        pipeline.train_iterator = original
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per stream")
    parser.add_argument("--steps", type=int, default=160, help="steps of each training run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per stream, alternating")
    args = parser.parse_args()

    digits = api.load_config(str(ROOT / "configs/simclr_digits.py"))
    lm = api.load_config(str(ROOT / "configs/causal_lm_pydoc.py"))
    ratios = {}
    for label, cfg in (("digits", digits), ("lm", lm)):
        source = sources.get_source(cfg.dataset, "train")
        cost = host_cost(source, cfg.batch_size, args.batches)
        for name, (wall, cpu) in cost.items():
            print(
                f"{label} batch {cfg.batch_size}, {name:11s}: {wall * 1e3:7.2f} ms wall,"
                f" {cpu * 1e3:7.2f} ms host CPU per batch"
            )
        ratios[f"{label}_cpu"] = cost["per-example"][1] / cost["per-batch"][1]
        ratios[f"{label}_grain_batch_cpu"] = cost["grain-batch"][1] / cost["per-batch"][1]
        if label == "digits":  # every read parsed by tfds again: splits over CACHE_BYTES
            kept, sources.CACHE_BYTES = sources.CACHE_BYTES, 0
            try:
                parsed = sources.get_source(cfg.dataset, "train")
            finally:
                sources.CACHE_BYTES = kept
            wall, cpu = host_cost(parsed, cfg.batch_size, args.batches)["per-batch"]
            print(
                f"digits batch {cfg.batch_size}, per-batch, not kept: {wall * 1e3:7.2f} ms"
                f" wall, {cpu * 1e3:7.2f} ms host CPU per batch"
            )
            ratios["digits_kept_cpu"] = cpu / cost["per-batch"][1]

    rates = run_rates(args.steps, args.repeats)
    for name, rows in rates.items():
        shown = ", ".join(f"{r:.0f} ex/s (data wait {w:.3f})" for r, w in rows)
        print(f"simclr_digits run, {name:11s}: {shown}")
    speed = {name: statistics.median(r for r, _ in rows) for name, rows in rates.items()}
    ratios["run_speed"] = speed["per-batch"] / speed["per-example"]
    ratios["run_speed_vs_grain_batch"] = speed["per-batch"] / speed["grain-batch"]
    print("ratios: " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
