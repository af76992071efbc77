"""A config's train step compiled with several XLA:CPU option sets, timed alternately in one run.

The step is the pre-training job's own (throughput.build_step); each variant is the same jitted
step compiled with per-executable `compiler_options`, so the variants share one process, one set
of batches and one machine state. `jaxssl` is the step as a run compiles it (importing jaxssl
puts convolutions on XLA's Eigen kernels and leaves reductions in YNNPACK:
jaxssl/train/xla_cpu.py); the others set which ops go to YNNPACK fusions, or trace the step
again with part of jaxssl/models/cpu_conv.py switched off: `lax_convs` (the training
convolutions on lax's own function) or `lax_input_grads` (inputs still stored, stride-2 input
gradients lax's own instead of by phases). Each variant starts from the same state and runs the
same batches, so the printed losses agree (exactly where the variant keeps the arithmetic order;
SimCLR's drift in the third decimal after 40 steps). Last line: `ratios: VARIANT=X ...` (the
jaxssl variant's time / the variant's: above 1, the variant is faster).

  python benchmarks/xla_options.py --config configs/simclr_digits.py           # about 2 min
  python benchmarks/xla_options.py --config configs/causal_lm_pydoc.py \\
      --set dataset.name=text:../shared/data/tinyshakespeare/input.txt --steps 20
  python benchmarks/xla_options.py --config configs/simclr_digits.py --variants jaxssl,lax_convs
  python benchmarks/xla_options.py --config configs/dino_digits.py --variants jaxssl,lax_input_grads
"""

import argparse
import statistics
import time

import jax
from throughput import (  # benchmarks/ is the script's folder
    build_step,
    load_config,
    one_device_step,
)

_T = "LIBRARY_FUSION_TYPE_"
_YNN = "xla_cpu_experimental_ynn_fusion_type"
VARIANTS = {  # name -> compiler_options (None: as jaxssl compiles it)
    "jaxssl": None,
    "no_ynn": {_YNN: ""},
    "xla_default": {_YNN: f"{_T}INDIVIDUAL_CONVOLUTION,{_T}REDUCE"},
    "dot_reduce": {_YNN: f"{_T}DOT,{_T}REDUCE"},
    "dot_eltwise_reduce": {_YNN: f"{_T}DOT,{_T}ELTWISE,{_T}REDUCE"},
    "eltwise_reduce": {_YNN: f"{_T}ELTWISE,{_T}REDUCE"},
    # Other XLA:CPU options, on top of jaxssl's placement (not in the default list).
    "onednn": {"xla_cpu_use_onednn": True, "xla_cpu_experimental_onednn_custom_call": True},
    "tiling_propagation": {"xla_cpu_experimental_enable_tiling_propagation": True},
    "no_fusion_emitters": {"xla_cpu_use_fusion_emitters": False},
}
# Traced again with part of jaxssl/models/cpu_conv.py switched off; compiled as jaxssl.
RETRACED = {
    "lax_convs": ("conv_general_dilated", lambda train: None),  # what nn.Conv does by default
    "lax_input_grads": ("_stride_2_pads", lambda *args: None),  # inputs stored, no phases
}
VARIANTS.update(dict.fromkeys(RETRACED))
DEFAULT = ("jaxssl", "no_ynn", "xla_default", "dot_reduce", "dot_eltwise_reduce", "eltwise_reduce")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument(
        "--variants", default=",".join(DEFAULT), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--steps", type=int, default=10, help="steps per round and variant")
    parser.add_argument("--rounds", type=int, default=4, help="the first one is not timed")
    args = parser.parse_args()

    if args.rounds < 2 or args.steps < 1:
        raise SystemExit("--rounds: at least 2 (the first is not timed); --steps: at least 1")
    names = args.variants.split(",")
    if names[0] != "jaxssl" or any(n not in VARIANTS for n in names):
        raise SystemExit(f"--variants: 'jaxssl' first, then any of {', '.join(VARIANTS)}")
    config = load_config(args.config, args.set)
    mesh, _, state, step, batches = one_device_step(config, args.steps)
    compiled = {
        n: step.lower(state, batches[0]).compile(VARIANTS[n]) for n in names if n not in RETRACED
    }
    for n in (n for n in names if n in RETRACED):
        from jaxssl.models import cpu_conv

        attribute, replacement = RETRACED[n]
        stored = getattr(cpu_conv, attribute)
        setattr(cpu_conv, attribute, replacement)
        try:  # traced (lower) while patched; the same seed gives the same initial state
            _, _, retraced = build_step(config, mesh)
            compiled[n] = retraced.lower(state, batches[0]).compile()
        finally:
            setattr(cpu_conv, attribute, stored)
    states = {n: jax.tree.map(lambda x: x.copy(), state) for n in names}  # steps donate
    times: dict[str, list[float]] = {n: [] for n in names}
    losses = {}
    for r in range(args.rounds):
        for n in names:
            start = time.perf_counter()
            for batch in batches:
                states[n], metrics = compiled[n](states[n], batch)
            losses[n] = float(jax.block_until_ready(metrics["loss"]))
            if r:
                times[n].append((time.perf_counter() - start) / args.steps)
    print(f"{args.config} {' '.join(args.set)}: {jax.devices()[0].device_kind}, 1 device")
    for n in names:
        ms = [round(t * 1e3, 1) for t in times[n]]
        print(f"{n:20s} {statistics.median(times[n]) * 1e3:8.1f} ms {ms}  loss {losses[n]:.5f}")
    base = statistics.median(times["jaxssl"])
    print("ratios: " + " ".join(f"{n}={base / statistics.median(times[n]):.3f}" for n in names))


if __name__ == "__main__":
    main()
