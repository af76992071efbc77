"""Where a config's train step spends its time: XLA ops ranked by time per step, from a trace.

The step is the pre-training job's own (throughput.build_step), on one device. After warm-up,
--steps steps run under `jax.profiler.trace` (a Perfetto trace, no TensorBoard needed). Each
op's span runs from its start to its completion (XLA:CPU marks the completion of an
asynchronous op, such as a convolution, separately); spans are summed per op and per op kind
(the name without its `.N` suffix), and each op is tied to the model code it came from through
the compiled HLO's `op_name` metadata (for a fusion: the ops inside it). Last line:
`step_ms=X span_ms=Y ops_per_step=Z` (the step timed outside the profiler; the spans' sum; ops
run per step).

  python benchmarks/step_profile.py --config configs/simclr_digits.py --steps 5
  python benchmarks/step_profile.py --config configs/causal_lm_pydoc.py \\
      --set dataset.name=text:../shared/data/tinyshakespeare/input.txt --top 15

XLA:CPU runs independent ops at once on its worker threads, so spans overlap and include time
an op waited for a thread: their sum exceeds the step, and they rank where the time goes rather
than add up to it (a loop's `while` span also holds its body's ops). Checked on the CPU only (no
GPU was lent to check which events a GPU trace names ops by).
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
from throughput import load_config, one_device_step  # benchmarks/ is the script's folder

# Trace events that are not ops: Python frames ($...), the runtime's own spans and markers.
NOT_OPS = re.compile(
    r"^\$|ThunkExecutor|ThreadpoolListener|Pjit|PjRt|Execute|ParseArguments|"
    r"Wait for|SlinkyThreadPool|block_until_ready"
)
END = "end: "  # XLA:CPU marks when an op completes; an asynchronous one (a convolution) ends later


def op_spans(trace_dir: str) -> list[tuple[str, float]]:
    """(op name, milliseconds from its start to its completion) of each op in the Perfetto trace
    jax.profiler wrote under trace_dir; an op without a completion mark spans its own event."""
    (path,) = pathlib.Path(trace_dir).rglob("*.trace.json.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    events = data["traceEvents"] if isinstance(data, dict) else data
    events = sorted(
        (e for e in events if e.get("ph") == "X" and not NOT_OPS.search(e.get("name", ""))),
        key=lambda e: e["ts"],
    )
    ends = collections.defaultdict(collections.deque)
    for e in events:
        if e["name"].startswith(END):
            ends[e["name"][len(END) :]].append(e["ts"] + e.get("dur", 0))
    spans = []
    for e in events:
        name = e["name"]
        if name.startswith(END):
            continue
        later = ends[name]
        while later and later[0] < e["ts"]:  # a completion mark without its start in the trace
            later.popleft()
        stop = later.popleft() if later else e["ts"] + e.get("dur", 0)
        spans.append((name, (stop - e["ts"]) / 1e3))
    return spans


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

    _, _, state, step, batches = one_device_step(load_config(args.config, args.set), args.steps)
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
        spans = op_spans(tmp)

    per_op, count = collections.Counter(), collections.Counter()
    for name, ms in spans:
        per_op[name] += ms / args.steps
        count[name] += 1 / args.steps
    per_kind, kind_count = collections.Counter(), collections.Counter()
    for name, ms in per_op.items():
        kind = re.sub(r"\.\d+$", "", name)
        per_kind[kind] += ms
        kind_count[kind] += count[name]
    total = sum(per_op.values())
    print(f"{args.config} {' '.join(args.set)}: {jax.devices()[0].device_kind}, 1 device")
    print("\nop kinds (ms per step, ops per step, share of the spans):")
    for kind, ms in per_kind.most_common(args.top):
        print(f"{ms:9.2f} {kind_count[kind]:7.0f} {ms / total:6.1%}  {kind}")
    print("\nops (ms per step, share, where in the model):")
    for name, ms in per_op.most_common(args.top):
        where = "; ".join(s[:70] for s in sources.get(name, [])[:2])
        print(f"{ms:9.2f} {ms / total:6.1%}  {name:32s} {where}")
    print(f"step_ms={step_ms:.1f} span_ms={total:.1f} ops_per_step={sum(count.values()):.0f}")


if __name__ == "__main__":
    main()
