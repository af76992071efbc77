"""Step speed of a process that compiled its train step vs one that loaded it from the cache.

Alternates child processes of this script: `compiled` builds the config's train step with the
persistent compilation cache off (XLA compiles it in the process), `missed` with the cache on
in an empty folder (compiled in the process and written to the cache, as a run's first start
does), `settled` the same followed by train/heap.settle after the first step (as the train loop
does: the compiler's free chunks taken out of malloc's bins), `loaded` with the folder a warm-up
child filled (the executable is read back, as every later start of the same run does). Each
child then times --rounds rounds of --block steps on one device (the job's own step:
throughput.one_device_step) and prints its median step time, with its user and system CPU and
minor page faults per step of those rounds. The children
inherit the environment, so malloc settings compare the same way (`JAXSSL_SYSTEM_MALLOC=1
MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`: glibc's per-thread arenas instead of
jaxssl's one). The four kinds of process run the same computation on the same batches, so
their losses agree exactly. Last line: `ratio compiled/loaded=X settled/loaded=Y` (the median of
the compiled, then the settled, processes' step times over the loaded ones'; above 1: the loaded
step is faster).

  python benchmarks/loaded_step.py --config configs/causal_lm_pydoc.py \\
      --set dataset.name=text:../shared/data/tinyshakespeare/input.txt      # about 7 min
  python benchmarks/loaded_step.py --config configs/simclr_digits.py --pairs 2
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

RESULT = "STEP_MS "  # prefix of a child's result line


def child(args) -> None:
    """Builds and times the step in this process; prints RESULT median_ms loss and, per step of
    the timed rounds, user and system CPU ms and minor page faults."""
    import jax
    from throughput import load_config, one_device_step  # benchmarks/ is the script's folder

    from jaxssl.train import compile_cache, heap

    compile_cache.enable(args.cache)  # "": off, the step is compiled here
    config = load_config(args.config, args.set)
    _, _, state, step, batches = one_device_step(config, args.block)
    state, metrics = step(state, batches[0])  # compiles or loads
    jax.block_until_ready(metrics)
    if args.settle:  # what the train loop does after its first step
        heap.settle()
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(args.rounds):
        start = time.perf_counter()
        for batch in batches:
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - start) / len(batches) * 1e3)
    after, steps = resource.getrusage(resource.RUSAGE_SELF), args.rounds * len(batches)
    user = (after.ru_utime - before.ru_utime) * 1e3 / steps
    system = (after.ru_stime - before.ru_stime) * 1e3 / steps
    faults = (after.ru_minflt - before.ru_minflt) / steps
    loss = float(metrics["loss"])
    print(f"{RESULT}{statistics.median(times):.2f} {loss:.6f} {user:.1f} {system:.2f} {faults:.0f}")


def spawn(args, cache: str, settle: bool = False) -> tuple[float, str, str]:
    """(median step ms, final loss, CPU and faults per step) of one child process."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--cache", cache]
    cmd += ["--config", args.config, "--rounds", str(args.rounds), "--block", str(args.block)]
    cmd += [f"--set={s}" for s in args.set] + (["--settle"] if settle else [])
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [x for x in out.stdout.splitlines() if x.startswith(RESULT)]
    if out.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(out.stdout + out.stderr)[-2000:]}")
    ms, loss, user, system, faults = lines[-1][len(RESULT) :].split()
    return float(ms), loss, f"user {user} ms, system {system} ms, {faults} minor faults a step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/causal_lm_pydoc.py")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument("--pairs", type=int, default=4, help="rounds of the three processes")
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds per process")
    parser.add_argument("--block", type=int, default=20, help="steps per round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="", help=argparse.SUPPRESS)
    parser.add_argument("--settle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.config} {' '.join(args.set)}; {os.cpu_count()} cores, load {load:.2f}")
    with tempfile.TemporaryDirectory(prefix="jaxssl_loaded_step_") as cache:
        spawn(args, cache)  # fills the cache
        times = {"compiled": [], "missed": [], "settled": [], "loaded": []}
        losses = set()
        for pair in range(args.pairs):
            for kind in times:
                with tempfile.TemporaryDirectory(prefix="jaxssl_missed_") as empty:
                    folder = {"loaded": cache, "compiled": ""}.get(kind, empty)
                    ms, loss, cpu = spawn(args, folder, settle=kind == "settled")
                times[kind].append(ms)
                losses.add(loss)
                print(f"round {pair}: {kind:8s} {ms:7.2f} ms a step ({loss}; {cpu})", flush=True)
    for kind, values in times.items():
        print(f"{kind}: median {statistics.median(values):.2f} ms, all {values}")
    same = "the same" if len(losses) == 1 else f"DIFFERENT ({sorted(losses)})"
    print(f"final losses: {same}")
    loaded = statistics.median(times["loaded"])
    ratio = statistics.median(times["compiled"]) / loaded
    settled = statistics.median(times["settled"]) / loaded
    print(f"ratio compiled/loaded={ratio:.3f} settled/loaded={settled:.3f}")


if __name__ == "__main__":
    main()
