"""Start-up with a cold vs a warm persistent compilation cache (jaxssl/train/compile_cache.py).

Runs `python -m jaxssl.main --config CONFIG --workdir NEW --config.total_steps=2
--config.log_every=1 --config.eval.enabled=False` as subprocesses, each in a fresh workdir,
alternating: cold = an empty cache folder (`--config.compile_cache_dir`), warm = the folder a
previous run filled. Per run, from the times metrics.jsonl records for steps 1 and 2: start to
first step (process launch to step 1 done: imports, config validation, data, init, compilation
and the step's own compute), the step's compute (step 2 minus step 1), and start-up = start to
first step minus one step's compute (what a run pays before it trains at speed); and the whole
process (plus checkpoint and plots). Last line: `ratio warm/cold=X first_step=Y startup=Z`
(X: whole processes; goal: at most 0.25).

  python benchmarks/startup.py                       # simclr_digits, 3 pairs, about 1 min
  python benchmarks/startup.py --config configs/causal_lm_pydoc.py --repeats 2
  python benchmarks/startup.py --config configs/simclr_imagenet_resnet50.py --jpegs 16 \
      --set batch_size=8 --repeats 2                 # the ImageNet ResNet-50 step, about 6 min

--jpegs N writes N random 256x256 JPEGs to a temporary flat folder and trains on it
(`dataset.name=folder:...`), so configs made for ImageNet start without ImageNet.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from throughput import write_jpegs  # benchmarks/ is the script's folder: on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(config: str, workdir: str, cache: str, extra: list[str]) -> tuple[float, ...]:
    """(start to first step, one step's compute, whole process) seconds of a 2-step run."""
    cmd = [
        sys.executable,
        "-m",
        "jaxssl.main",
        "--config",
        config,
        "--workdir",
        workdir,
        "--config.total_steps=2",
        "--config.log_every=1",
        "--config.eval.enabled=False",
        f"--config.compile_cache_dir={cache}",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    launched, start = time.time(), time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(out.stdout + out.stderr)[-2000:]}")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        times = {r["step"]: r["time"] for r in map(json.loads, f) if "loss" in r}
    return times[1] - launched, times[2] - times[1], took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/simclr_digits.py")
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm pairs")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument("--jpegs", type=int, default=0, help="train on N random JPEGs")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{args.config}, 2 steps, no evaluation; {os.cpu_count()} cores, load {load:.2f}")
    tmp = tempfile.mkdtemp(prefix="jaxssl_startup_")
    extra = [f"--config.{kv}" for kv in args.set]
    if args.jpegs:
        write_jpegs(os.path.join(tmp, "jpegs"), args.jpegs, 256)
        extra.append(f"--config.dataset.name=folder:{os.path.join(tmp, 'jpegs')}")
    cold, warm = [], []
    try:
        for i in range(args.repeats):
            cache = os.path.join(tmp, f"cache{i}")  # empty: every compilation is a miss
            cold.append(run(args.config, os.path.join(tmp, f"cold{i}"), cache, extra))
            warm.append(run(args.config, os.path.join(tmp, f"warm{i}"), cache, extra))
            (c1, cs, cw), (w1, ws, ww) = cold[-1], warm[-1]
            print(
                f"pair {i}: first step cold {c1:.1f} s, warm {w1:.1f} s (a step computes"
                f" {cs:.1f} / {ws:.1f} s); whole process cold {cw:.1f} s, warm {ww:.1f} s",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (c1, cs, cw), (w1, ws, ww) = (
        [statistics.median(x[k] for x in runs) for k in range(3)] for runs in (cold, warm)
    )
    step = statistics.median([cs, ws])
    print(f"median first step: cold {c1:.1f} s, warm {w1:.1f} s; one step computes {step:.2f} s")
    print(f"median start-up (first step - a step): cold {c1 - step:.1f} s, warm {w1 - step:.1f} s")
    print(f"median whole process: cold {cw:.1f} s, warm {ww:.1f} s")
    print(
        f"ratio warm/cold={ww / cw:.3f} first_step={w1 / c1:.3f}"
        f" startup={(w1 - step) / (c1 - step):.3f}"
    )


if __name__ == "__main__":
    main()
