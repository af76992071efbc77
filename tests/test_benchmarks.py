"""Every script in benchmarks/ runs, shortened, and prints its last line.

The README's `python benchmarks/NAME.py` commands run in test_readme.py; this runs the others,
whose figures benchmarks/README.md quotes, with flags that make them seconds long (their
ratios mean nothing at that size: only that the script still works). Marked slow: `.ci/run`
runs it after the fast suite.
"""

import shlex

import pytest

from .helpers import ROOT
from .test_readme import BENCH_SHORTEN, run_benchmark

SHARED = ROOT.parent / "shared" / "data"
# script: (flags that shorten it, what its last line starts with, whether it reads ../shared)
SCRIPTS = {
    "checkpoint_cost.py": ("--steps 4 --every 2 --repeats 1", "checkpointed / plain", False),
    "fused_transpose.py": ("--shapes 8x4x4x8 --repeats 1", "ratios:", False),
    "mae_speedup.py": ("--batch 8 --model vit_tiny --image 16 --repeats 1", "mae encoder", False),
    "make_cifar10_npz.py": ("{shared}/cifar10 {tmp}/cifar10.npz", None, True),
    "startup.py": ("--repeats 1", "ratio warm/cold=", False),
    "step_overhead.py": ("--steps 1 --batch 8", "ratio full/bare:", False),
    "vs_pytorch.py": ("--steps 2 --run-steps 20 --simclr-batch 4 --clm-block 1", "ratios:", True),
    "xla_options.py": (
        "--config configs/simclr_digits.py --steps 1 --rounds 2 --variants jaxssl,lax_convs",
        "ratios:",
        False,
    ),
}


def test_every_benchmark_script_is_run_by_a_test():
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")}
    assert scripts == set(SCRIPTS) | set(BENCH_SHORTEN), scripts ^ (
        set(SCRIPTS) | set(BENCH_SHORTEN)
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_benchmark_script_runs(script, tmp_path):
    flags, last, needs_shared = SCRIPTS[script]
    if needs_shared and not SHARED.exists():
        pytest.skip("reads ../shared/data, absent from this checkout")
    proc = run_benchmark(
        [f"benchmarks/{script}", *shlex.split(flags.format(shared=SHARED, tmp=tmp_path))]
    )
    assert proc.returncode == 0, f"{script}: {proc.stderr[-2000:]}"
    if last is not None:
        assert proc.stdout.strip().splitlines()[-1].startswith(last), proc.stdout[-500:]
