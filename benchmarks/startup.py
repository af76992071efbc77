"""Start-up with a cold vs a warm persistent compilation cache (jaxssl/train/compile_cache.py).

Runs `python -m jaxssl.main --config CONFIG --workdir NEW --config.total_steps=1
--config.eval.enabled=False` as subprocesses, each in a fresh workdir, alternating: cold = an
empty cache folder (`--config.compile_cache_dir`), warm = the folder a previous run filled. The
process wall time is start to first step plus writing the step's checkpoint: imports, config
validation, data, init and compilation. Last line: `ratio warm/cold=X` (goal: at most 0.25).

  python benchmarks/startup.py                       # simclr_digits, 3 pairs, about 3 min
  python benchmarks/startup.py --config configs/causal_lm_pydoc.py --repeats 2
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(config: str, workdir: str, cache: str) -> float:
    """Wall seconds of one 1-step run (raises with the output tail if it fails)."""
    cmd = [
        sys.executable,
        "-m",
        "jaxssl.main",
        "--config",
        config,
        "--workdir",
        workdir,
        "--config.total_steps=1",
        "--config.eval.enabled=False",
        f"--config.compile_cache_dir={cache}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(out.stdout + out.stderr)[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/simclr_digits.py")
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm pairs")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"{args.config}, 1 step, no evaluation; {os.cpu_count()} cores, load {load:.2f}")
    tmp = tempfile.mkdtemp(prefix="jaxssl_startup_")
    cold, warm = [], []
    try:
        for i in range(args.repeats):
            cache = os.path.join(tmp, f"cache{i}")  # empty: every compilation is a miss
            cold.append(run(args.config, os.path.join(tmp, f"cold{i}"), cache))
            warm.append(run(args.config, os.path.join(tmp, f"warm{i}"), cache))
            print(f"pair {i}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"median: cold {c:.1f} s, warm {w:.1f} s")
    print(f"ratio warm/cold={w / c:.3f}")


if __name__ == "__main__":
    main()
