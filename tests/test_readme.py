"""Every `python -m jaxssl.main` command the README shows runs, as typed, from the repo root.

Commands are read from README.md itself (bash blocks and inline code), so a new or edited
command is tested without editing this file. Each runs as a subprocess in a scratch copy of
the repository root (configs/ linked, ../shared beside it), two at a time in README order, each
after the earlier commands whose workdir it names, so that it finds what they wrote
(runs/simclr_digits, runs/ft ...; a command alone uses about 1.5 of the 2 cores). The only
change is appended flags that shorten the run: fewer steps, a smaller probe and, for the
corpus configs, fewer windows.
Placeholders are filled in: METHOD with one registered method that has a digits config (each
method's own tests cover the others), /path/to/input.txt with a small real text file. The walk
takes minutes (a compile per command), so it is marked slow: `.ci/run` runs it after the
fast suite. Launch-script commands are tested with fake
gcloud / sbatch in test_launch.py; pip / pytest commands by .ci/run itself; the README's
`python benchmarks/NAME.py` commands by test_every_readme_benchmark_command_runs (shortened).
`tensorboard --logdir DIR` (a template; tensorboard is not a dependency) and
`python ../shared/tools/layers.py` (the team's checkout tool, outside the repository) are not run.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent import futures

import pytest

from .conftest import FAST_COMPILE
from .helpers import ROOT

README = ROOT / "README.md"
ENTRY = ("python -m jaxssl.main ", "jaxssl ")
# Appended to every command (the last value of a repeated --config flag wins).
SHORTEN = {
    "pretrain": "--config.total_steps=2 --config.log_every=1 --config.checkpoint_every=2"
    " --config.eval.probe_steps=5",
    "finetune": "--config.total_steps=2 --config.log_every=1 --config.checkpoint_every=2",
    "generate": "--config.generate.num_tokens=4 --config.generate.num_samples=1",
}
# Appended to the commands of these configs: their evaluation embeds 11,000 windows, minutes on
# the walk's unoptimised XLA (FAST_COMPILE); 200 per corpus is the same code on less data.
SHORTEN_CONFIG = {
    name: "--config.dataset.max_windows_per_class=200"
    for name in ("configs/simcse_corpus_id.py", "configs/finetune_corpus_id.py")
}
TEMPLATES = ("NAME", "DIR", "ROW", "FLAGS", "...")  # usage lines, not commands


def readme_commands(text: str) -> list[str]:
    """The jaxssl commands of README.md in order: bash blocks and inline `code`, joined lines."""
    found = []
    for block in re.finditer(r"```bash\n(.*?)```|`([^`\n]+)`", text, re.S):
        body = (block.group(1) or block.group(2)).replace("\\\n", " ")
        for line in body.splitlines():
            line = re.sub(r"\s+", " ", line.split(" # ")[0]).strip()
            line = line.split("&& ")[-1]  # the README's first command: install && run
            if line.startswith(ENTRY) and "--workdir" in line:
                found.append(line)
    return list(dict.fromkeys(found))  # once each, first position kept


def _expand(command: str, method: str, text_file: str) -> list[str]:
    if any(t in command.replace("/path/to/input.txt", "") for t in (*TEMPLATES, "/path/to/")):
        return []
    return [command.replace("/path/to/input.txt", text_file).replace("METHOD", method)]


def _job(command: str) -> str:
    job = re.search(r"--config\.job=(\w+)", command)
    if job:
        return job.group(1)
    return "finetune" if "finetune_" in command else "pretrain"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A scratch repository root: configs/ linked, ../shared beside it when the checkout has it."""
    base = tmp_path_factory.mktemp("user")
    root = base / "jaxssl"
    root.mkdir()
    (root / "configs").symlink_to(ROOT / "configs")
    shared = ROOT.parent / "shared"
    if shared.exists():
        (base / "shared").symlink_to(shared)
    text = root / "input.txt"
    text.write_text(("To be, or not to be, that is the question. " * 400).strip())
    return root, str(text)


def _workdir(command: str) -> str | None:
    match = re.search(r"--workdir[= ](\S+)", command)
    return match.group(1) if match else None


def after_what_they_name(commands: list[str]) -> list[set[int]]:
    """Per command, the earlier commands whose workdir it names (init_from, or its own)."""
    named = []
    for i, command in enumerate(commands):
        dirs = {j: _workdir(c) for j, c in enumerate(commands[:i])}
        named.append(
            {j for j, d in dirs.items() if d and re.search(rf"{re.escape(d)}(?![\w/.-])", command)}
        )
    return named


def run_in_order(commands: list[str], run: Callable[[str], str | None], parallel: int) -> list:
    """run(command) for every command, at most `parallel` at once, each started after the
    commands after_what_they_name gives it; run's non-None results, in command order."""
    needs, started, pending = after_what_they_name(commands), {}, list(range(len(commands)))
    with futures.ThreadPoolExecutor(parallel) as pool:
        while pending:
            busy = sum(not f.done() for f in started.values())
            ready = [
                i for i in pending if all(j in started and started[j].done() for j in needs[i])
            ]
            for i in ready[: parallel - busy]:
                started[i] = pool.submit(run, commands[i])
                pending.remove(i)
            running = [f for f in started.values() if not f.done()]
            if pending and running:
                futures.wait(running, return_when=futures.FIRST_COMPLETED)
    return [r for i in sorted(started) if (r := started[i].result()) is not None]


def test_walk_order_waits_for_the_workdirs_a_command_names():
    commands = [
        "x --workdir runs/a",
        "x --workdir runs/ab",
        "x --workdir runs/c --config.init_from=runs/a",
        "x --workdir runs/a --config.job=generate",
        "x --workdir runs/d --config.init_from=runs/ab",
    ]
    assert after_what_they_name(commands) == [set(), set(), {0}, {0}, {1}]
    finished: list[int] = []

    def run(command):
        index = commands.index(command)
        time.sleep(0.3 if index == 0 else 0.01)  # what needs runs/a would start too early
        assert after_what_they_name(commands)[index] <= set(finished), command
        finished.append(index)
        return f"{index}" if index % 2 else None

    assert run_in_order(commands, run, parallel=2) == ["1", "3"]
    assert sorted(finished) == list(range(5))


def test_readme_lists_the_commands_it_promises():
    commands = readme_commands(README.read_text())
    assert any("configs/simclr_digits.py --workdir runs/simclr_digits" in c for c in commands)
    assert any("--config.init_from=runs/simclr_digits" in c for c in commands)
    assert len(commands) >= 8


def _needs_shared(command: str) -> bool:
    """Whether a command reads ../shared: on its command line or in its config file."""
    if "../shared" in command:
        return True
    argv = shlex.split(command)
    if "--config" not in argv:
        return False
    config = ROOT / argv[argv.index("--config") + 1]
    return config.is_file() and "../shared" in config.read_text()


@pytest.mark.slow
def test_every_readme_command_runs_verbatim(repo, tmp_path_factory):
    from jaxssl import methods

    root, text_file = repo
    method = next(
        m
        for m in sorted(methods.METHODS)
        if m != "simclr" and (ROOT / "configs" / f"{m}_digits.py").exists()
    )
    commands = [
        c for line in readme_commands(README.read_text()) for c in _expand(line, method, text_file)
    ]
    env = dict(
        os.environ,
        XLA_FLAGS=FAST_COMPILE,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.getbasetemp() / "readme_xla_cache"),
        PYTHONPATH=str(ROOT),
    )

    def run(command: str) -> str | None:
        if _needs_shared(command) and not (root.parent / "shared").exists():
            return None  # a command on the development datasets, absent from this checkout
        config = re.search(r"--config[= ](\S+)", command)
        extra = f"{SHORTEN.get(_job(command), '')} {SHORTEN_CONFIG.get(config and config[1], '')}"
        argv = shlex.split(f"{command} {extra}")
        if argv[0] == "python":
            argv[0] = sys.executable
        proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return f"{command}\n  exit {proc.returncode}: {proc.stderr[-1500:]}"
        return None

    failures = run_in_order(commands, run, parallel=2)
    assert not failures, "\n".join(failures)
    # What the README's chained commands rely on was written where they look for it.
    for rel in ("runs/simclr_digits/summary.json", "runs/ft/summary.json"):
        assert (root / rel).exists(), rel
    assert pathlib.Path(root / "runs/ft_pred/predictions_test.npz").exists()


# Flags appended to the README's `python benchmarks/NAME.py` commands: the same code, shorter.
BENCH_SHORTEN = {
    "batch_handoff.py": "--steps 3 --repeats 1 --batches 2",
    "causal_lm_pydoc.py": "--steps 2",
    "generate_kv_cache.py": "--new-tokens 4 --repeats 1",
    "input_pipeline.py": "--images 200 --batches 2 --warmup 1 --repeats 1",
    "loaded_step.py": "--pairs 1 --rounds 1 --block 2",
    "step_profile.py": "--steps 1 --top 3",
    "strided_input_grad.py": "--layers 4x9x9x3-3x3-5,4x8x8x3-1x1-5 --repeats 1 --rounds 1",
    "throughput.py": "--steps 1",
}


def readme_benchmark_commands(text: str) -> list[str]:
    """The `python benchmarks/NAME.py ...` commands README.md shows, once each, in order."""
    found = re.findall(r"`(python benchmarks/[\w.]+\.py[^`]*)`", text)
    return list(dict.fromkeys(found))


def run_benchmark(args: list[str]) -> subprocess.CompletedProcess:
    """`python benchmarks/...` args from the repository root, on fast-compiling CPU XLA."""
    env = dict(os.environ, XLA_FLAGS=FAST_COMPILE, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    argv = [sys.executable, *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_every_readme_benchmark_command_runs(tmp_path):
    commands = readme_benchmark_commands(README.read_text())
    assert commands and all(shlex.split(c)[1].split("/")[1] in BENCH_SHORTEN for c in commands)
    for command in commands:
        argv = shlex.split(f"{command} {BENCH_SHORTEN[shlex.split(command)[1].split('/')[1]]}")
        proc = run_benchmark(argv[1:])
        assert proc.returncode == 0, f"{command}: {proc.stderr[-1500:]}"
