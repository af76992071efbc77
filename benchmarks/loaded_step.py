"""Step speed of a process that compiled its train step vs one that loaded it from the cache.

Alternates child processes of this script: `compiled` builds the config's train step with the
persistent compilation cache off (XLA compiles it in the process), `missed` with the cache on
in an empty folder (compiled in the process and written to the cache, as a run's first start
does), `loaded` with the folder a warm-up child filled (the executable is read back, as every
later start of the same run does). Each child then times --rounds rounds of --block
steps on one device (the job's own step: throughput.one_device_step) and prints its median step
time. The three kinds of process run the same computation on the same batches, so their losses
agree exactly. Last line: `ratio compiled/loaded=X` (the median of the compiled processes'
step times over the loaded ones'; above 1: the loaded step is faster).

  python benchmarks/loaded_step.py --config configs/causal_lm_pydoc.py \\
      --set dataset.name=text:../shared/data/tinyshakespeare/input.txt      # about 5 min
  python benchmarks/loaded_step.py --config configs/simclr_digits.py --pairs 2
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

RESULT = "STEP_MS "  # prefix of a child's result line


def child(args) -> None:
    """Builds and times the step in this process; prints RESULT median_ms loss."""
    import jax
    from throughput import load_config, one_device_step  # benchmarks/ is the script's folder

    from jaxssl.train import compile_cache

    compile_cache.enable(args.cache)  # "": off, the step is compiled here
    config = load_config(args.config, args.set)
    _, _, state, step, batches = one_device_step(config, args.block)
    state, metrics = step(state, batches[0])  # compiles or loads
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for batch in batches:
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - start) / len(batches) * 1e3)
    print(f"{RESULT}{statistics.median(times):.2f} {float(metrics['loss']):.6f}", flush=True)


def spawn(args, cache: str) -> tuple[float, str]:
    """(median step ms, final loss) of one child process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--cache", cache]
    cmd += ["--config", args.config, "--rounds", str(args.rounds), "--block", str(args.block)]
    cmd += [f"--set={s}" for s in args.set]
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in out.stdout.splitlines() if x.startswith(RESULT)]
    if out.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(out.stdout + out.stderr)[-2000:]}")
    ms, loss = lines[-1][len(RESULT) :].split()
    return float(ms), loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/causal_lm_pydoc.py")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument("--pairs", type=int, default=4, help="rounds of the three processes")
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds per process")
    parser.add_argument("--block", type=int, default=20, help="steps per round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.config} {' '.join(args.set)}; {os.cpu_count()} cores, load {load:.2f}")
    with tempfile.TemporaryDirectory(prefix="jaxssl_loaded_step_") as cache:
        spawn(args, cache)  # fills the cache
        times = {"compiled": [], "missed": [], "loaded": []}
        losses = set()
        for pair in range(args.pairs):
            for kind in times:
                with tempfile.TemporaryDirectory(prefix="jaxssl_missed_") as empty:
                    folder = {"compiled": "", "missed": empty, "loaded": cache}[kind]
                    ms, loss = spawn(args, folder)
                times[kind].append(ms)
                losses.add(loss)
                print(f"round {pair}: {kind:8s} {ms:7.2f} ms a step (loss {loss})", flush=True)
    for kind, values in times.items():
        print(f"{kind}: median {statistics.median(values):.2f} ms, all {values}")
    same = "the same" if len(losses) == 1 else f"DIFFERENT ({sorted(losses)})"
    print(f"final losses: {same}")
    ratio = statistics.median(times["compiled"]) / statistics.median(times["loaded"])
    print(f"ratio compiled/loaded={ratio:.3f}")


if __name__ == "__main__":
    main()
