"""Where a config's train step spends its time: XLA ops ranked by time per step, from a trace.

The step is the pre-training job's own (throughput.build_step), on one device. After warm-up,
--steps steps run under `jax.profiler.trace` (a Perfetto trace, no TensorBoard needed); the
trace's op events are summed per op and per op kind (the op name without its `.N` suffix),
and each op is tied to the model code it came from through the compiled HLO's `op_name`
metadata (for a fusion: the ops inside it). Last line: `step_ms=X op_ms=Y ops_per_step=Z`
(the timed step outside the profiler; the ops' summed time; op events per step).

  python benchmarks/step_profile.py --config configs/simclr_digits.py --steps 5
  python benchmarks/step_profile.py --config configs/causal_lm_pydoc.py \\
      --set dataset.name=text:../shared/data/tinyshakespeare/input.txt --top 15

An op's time is the span of its event on the thread that ran it. On the CPU, XLA's worker threads
run independent ops at once and a parallel op spreads over them, and a loop (`while`) includes
its body's ops: the ops' sum ranks where the time goes but does not add up to the step. Checked
on the CPU only (no GPU was lent to check which events a GPU trace names ops by).
"""

import argparse
import collections
import gzip
import json
import pathlib
import re
import tempfile
import time

import jax
from throughput import build_step, load_config  # benchmarks/ is the script's folder

# Trace events that are not ops: Python frames ($...), the runtime's own spans and markers.
NOT_OPS = re.compile(
    r"^\$|^end: |ThunkExecutor|ThreadpoolListener|Pjit|PjRt|Execute|ParseArguments|"
    r"Wait for|SlinkyThreadPool|block_until_ready"
)


def op_events(trace_dir: str) -> list[dict]:
    """The complete ('X') events of the Perfetto trace jax.profiler wrote under trace_dir."""
    (path,) = pathlib.Path(trace_dir).rglob("*.trace.json.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and not NOT_OPS.search(e.get("name", ""))]


def op_sources(hlo_text: str) -> dict[str, list[str]]:
    """op name -> the distinct op_name metadata of the instruction (a fusion: of its body)."""
    calls, bodies, names = {}, collections.defaultdict(list), {}
    body = None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head:
            body = head.group(1)
            continue
        inst = re.match(r"^\s+(?:ROOT )?%([\w.\-]+) = ", line)
        if not inst:
            continue
        meta = re.search(r'op_name="([^"]+)"', line)
        source = re.sub(r"^jit\([^)]*\)/", "", meta.group(1)).replace("\\", "") if meta else None
        if source and body is not None and source not in bodies[body]:
            bodies[body].append(source)
        called = re.search(r"calls=%([\w.\-]+)", line)
        if called:
            calls[inst.group(1)] = called.group(1)
        names[inst.group(1)] = [source] if source else []
    return {n: bodies.get(calls[n], []) if n in calls else s for n, s in names.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument("--steps", type=int, default=5, help="steps timed and traced")
    parser.add_argument("--top", type=int, default=25, help="ops listed")
    args = parser.parse_args()

    from jaxssl import sharding
    from jaxssl.data import pipeline

    config = load_config(args.config, args.set)
    config.eval.enabled = False
    mesh = sharding.make_mesh(jax.devices()[:1])
    parts, state, step = build_step(config, mesh)
    data = pipeline.train_iterator(
        parts.train_source, global_batch_size=config.batch_size, seed=config.seed
    )
    batches = [sharding.to_global_batch(next(data), mesh) for _ in range(args.steps)]
    sources = op_sources(step.lower(state, batches[0]).compile().as_text())
    for batch in batches[:2]:  # compile and warm up
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for batch in batches:
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    step_ms = (time.perf_counter() - start) / args.steps * 1e3
    with tempfile.TemporaryDirectory(prefix="jaxssl_profile_") as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for batch in batches:
                state, metrics = step(state, batch)
            jax.block_until_ready(metrics)
        events = op_events(tmp)

    per_op, count = collections.Counter(), collections.Counter()
    for e in events:
        per_op[e["name"]] += e.get("dur", 0) / 1e3 / args.steps
        count[e["name"]] += 1 / args.steps
    per_kind, kind_count = collections.Counter(), collections.Counter()
    for name, ms in per_op.items():
        kind = re.sub(r"\.\d+$", "", name)
        per_kind[kind] += ms
        kind_count[kind] += count[name]
    total = sum(per_op.values())
    print(f"{args.config} {' '.join(args.set)}: {jax.devices()[0].device_kind}, 1 device")
    print("\nop kinds (ms per step, ops per step, share of the ops' time):")
    for kind, ms in per_kind.most_common(args.top):
        print(f"{ms:9.2f} {kind_count[kind]:7.0f} {ms / total:6.1%}  {kind}")
    print("\nops (ms per step, share, where in the model):")
    for name, ms in per_op.most_common(args.top):
        where = "; ".join(s[:70] for s in sources.get(name, [])[:2])
        print(f"{ms:9.2f} {ms / total:6.1%}  {name:32s} {where}")
    print(f"step_ms={step_ms:.1f} op_ms={total:.1f} ops_per_step={sum(count.values()):.0f}")


if __name__ == "__main__":
    main()
