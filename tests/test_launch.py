"""launch/tpu_vm.sh and launch/slurm.sh against fake gcloud, curl, uv, sbatch, srun ... on PATH.

The fakes are small bash scripts written into tmp_path: each appends its argv to a log and
plays its part from files under $FAKE_ROOT (TPU VM and queued-resource states, gs:// objects,
TPU workers as home folders where the real worker commands run). No network, no jax.
"""

import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import tarfile
import time

import pytest

from jaxssl.train import lock as lock_lib
from jaxssl.train.lock import WorkdirLock, WorkdirLockedError

ROOT = pathlib.Path(__file__).resolve().parents[1]

FAKE_GCLOUD = r"""#!/usr/bin/env bash
# Fake gcloud: TPU VMs, queued resources and gs:// objects as files under $FAKE_ROOT.
root=${FAKE_ROOT:?}
{ printf '%s\x1f' gcloud "$@"; printf '\x1e'; } >>"$root/calls.log"
args=()
while [[ $# -gt 0 ]]; do
  case $1 in --project) shift 2 ;; --project=*) shift ;; *) args+=("$1"); shift ;; esac
done
set -- "${args[@]}"
opt() {  # the value of --flag VALUE or --flag=VALUE
  local i
  for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
      "$1") echo "${args[i + 1]}"; return 0 ;;
      "$1="*) echo "${args[i]#*=}"; return 0 ;;
    esac
  done
  return 1
}
positional() {  # words after the verb that are neither flags nor flag values
  local i skip=0
  for ((i = 4; i < ${#args[@]}; i++)); do
    if [[ $skip -eq 1 ]]; then skip=0; continue; fi
    case ${args[i]} in
      --zone|--worker|--command|--format) skip=1 ;;
      --*) ;;
      *) echo "${args[i]}" ;;
    esac
  done
}
gcs() { echo "$root/gcs/${1#gs://}"; }
vanish() {  # a deleted VM takes its processes with it
  local f
  for f in "$1"/worker*/jaxssl-run.wpid "$1"/worker*/jaxssl-run.pid; do
    [[ -f $f ]] && kill -KILL "$(cat "$f")" 2>/dev/null
  done
  rm -rf "$1"
}
hosts() { local n=${1##*-}; n=$((n / 8)); [[ $n -lt 1 ]] && n=1; echo "$n"; }
workers_of() {  # NODE WORKER-FLAG
  [[ $2 == all ]] || { echo "$2"; return; }
  seq 0 $(( $(hosts "$(cat "$root/nodes/$1/accel")") - 1 ))
}
name=${5-}
node=$root/nodes/$name
qr=$root/qrs/$name
case "$1 $2 $3 $4" in
  "compute tpus tpu-vm create")
    if [[ -n ${FAKE_CREATE_FAIL:-} ]]; then
      echo "ERROR: (gcloud.compute.tpus.tpu-vm.create) RESOURCE_EXHAUSTED: no more capacity" >&2
      exit 1
    fi
    mkdir -p "$node"; echo READY >"$node/state"; opt --accelerator-type >"$node/accel"; exit 0 ;;
  "compute tpus tpu-vm describe")
    [[ -f $node/state ]] || { echo "ERROR: NOT_FOUND: $name" >&2; exit 1; }
    cat "$node/state"; exit 0 ;;
  "compute tpus tpu-vm delete")
    [[ -d $node ]] || { echo "ERROR: NOT_FOUND: $name" >&2; exit 1; }
    vanish "$node"; exit 0 ;;
  "compute tpus queued-resources create")
    n=$(( $(cat "$root/qr_creates" 2>/dev/null || echo 0) + 1 )); echo $n >"$root/qr_creates"
    IFS='|' read -r -a plans <<<"${FAKE_QR_STATES:-ACTIVE}"
    plan=${plans[n - 1]:-${plans[${#plans[@]} - 1]}}
    mkdir -p "$qr"; tr ' ' '\n' <<<"$plan" >"$qr/states"
    opt --node-id >"$qr/node"; opt --accelerator-type >"$qr/accel"; exit 0 ;;
  "compute tpus queued-resources describe")
    [[ -f $qr/states ]] || { echo "ERROR: NOT_FOUND: $name" >&2; exit 1; }
    state=$(head -n 1 "$qr/states")
    [[ $(wc -l <"$qr/states") -gt 1 ]] && sed -i 1d "$qr/states"
    n=$root/nodes/$(cat "$qr/node")
    if [[ $state == ACTIVE && ! -d $n ]]; then
      mkdir -p "$n"; echo READY >"$n/state"; cp "$qr/accel" "$n/accel"
    fi
    echo "$state"; exit 0 ;;
  "compute tpus queued-resources delete")
    [[ -d $qr ]] || { echo "ERROR: NOT_FOUND: $name" >&2; exit 1; }
    vanish "$root/nodes/$(cat "$qr/node")"; rm -rf "$qr"; exit 0 ;;
  "compute tpus tpu-vm ssh")
    if [[ $(cat "$node/state" 2>/dev/null) != READY ]]; then
      echo "ssh: connect to host $name: Connection refused" >&2; exit 255
    fi
    cmd=$(opt --command)
    token=""
    if [[ $cmd == *jaxssl.main* ]]; then  # the start command: the next scripted run outcome
      read -r -a tokens <<<"$(cat "$root/tokens" 2>/dev/null)"
      token=${tokens[0]:-ok}; echo "${tokens[*]:1}" >"$root/tokens"
    fi
    rc=0
    for w in $(workers_of "$name" "$(opt --worker)"); do
      home=$node/worker$w
      mkdir -p "$home"
      (cd "$home" && HOME=$home FAKE_WORKER=$w FAKE_NODE=$name FAKE_TOKEN=$token \
        bash -c "$cmd") || rc=$?
    done
    exit $rc ;;
  "compute tpus tpu-vm scp")
    mapfile -t pos < <(positional)
    src=${pos[0]} dest=${pos[${#pos[@]} - 1]}
    if [[ $dest == *:* ]]; then
      for w in $(workers_of "${dest%%:*}" "$(opt --worker)"); do
        mkdir -p "$root/nodes/${dest%%:*}/worker$w"
        cp -r "$src" "$root/nodes/${dest%%:*}/worker$w/${dest#*:}" || exit 1
      done
    else
      [[ -n ${FAKE_SCP_FAIL:-} ]] && { echo "scp: Connection closed" >&2; exit 1; }
      path=${src#*:}
      [[ $path == /* ]] || path="$root/nodes/${src%%:*}/worker$(opt --worker)/$path"
      cp -r "$path" "$dest" || exit 1
    fi
    exit 0 ;;
esac
case "$1 $2" in
  "storage ls")
    if [[ ! -e $(gcs "$3") ]]; then
      echo "ERROR: (gcloud.storage.ls) One or more URLs matched no objects." >&2; exit 1
    fi
    echo "$3"; exit 0 ;;
  "storage mv")
    mv "$(gcs "$3")" "$(gcs "$4")"; exit ;;
  "storage rsync")
    mapfile -t pos < <(for a in "${@:3}"; do [[ $a == -* ]] || echo "$a"; done)
    src=$(gcs "${pos[0]}") dst=${pos[1]} excl=$(opt --exclude || echo '^$')
    [[ -d $src ]] || { echo "ERROR: $src not found" >&2; exit 1; }
    mkdir -p "$dst"
    (cd "$src" && find . -type f | sed 's|^\./||') | { grep -Ev "$excl" || true; } |
      while IFS= read -r f; do mkdir -p "$dst/$(dirname "$f")"; cp "$src/$f" "$dst/$f"; done
    exit 0 ;;
esac
echo "fake gcloud: unexpected command: $*" >&2
exit 64
"""

FAKE_CURL = r"""#!/usr/bin/env bash
{ printf '%s\x1f' curl "$@"; printf '\x1e'; } >>"$FAKE_ROOT/calls.log"
[[ "$*" == "-LsSf https://astral.sh/uv/install.sh" ]] || exit 22
echo 'mkdir -p "$UV_UNMANAGED_INSTALL" && cp "$FAKE_ROOT/uv" "$UV_UNMANAGED_INSTALL/uv"'
"""

FAKE_UV = r"""#!/usr/bin/env bash
{ printf '%s\x1f' uv "$@"; printf '\x1e'; } >>"$FAKE_ROOT/calls.log"
case "$1" in
  venv)
    [[ "$*" == *"--python 3.11"* ]] || { echo "fake uv: no --python 3.11" >&2; exit 2; }
    dir=${*: -1}; mkdir -p "$dir/bin" && cp "$FAKE_ROOT/python" "$dir/bin/python" ;;
  pip)
    [[ -n ${FAKE_PIP_FAIL:-} ]] && { echo "error: No solution found for jax[tpu]" >&2; exit 1; }
    [[ -x "$4" ]] || { echo "fake uv: --python $4 is not there" >&2; exit 2; } ;;
  *) exit 2 ;;
esac
"""

# jaxssl.main as the workers run it: its outcome is the token the start command got.
FAKE_PYTHON = r"""#!/usr/bin/env bash
root=${FAKE_ROOT:?}
w=${FAKE_WORKER:-0}
{ printf '%s\x1f' "python@$w" "$@"; printf '\x1e'; } >>"$root/python.log"
wd=""
for a in "$@"; do case $a in --workdir=*) wd=${a#--workdir=} ;; esac; done
case $wd in gs://*) wd="$root/gcs/${wd#gs://}" ;; esac
event() { echo "$1 worker$w" >>"$root/events.log"; }
finish() {
  if [[ $w == 0 ]]; then
    mkdir -p "$wd/checkpoints/4"
    echo '{"steps": 4}' >"$wd/summary.json"; echo '{"step": 4}' >"$wd/metrics.jsonl"
    echo x >"$wd/checkpoints/4/state"; echo '{"job": "pretrain"}' >"$wd/jaxssl.done"
  fi
  echo "worker $w: finished"; exit 0
}
trap 'event TERM; echo "jaxssl: stopped by SIGTERM. Resume with the same command:"; exit 0' TERM
echo "worker $w: step 1"
case ${FAKE_TOKEN:-ok} in
  ok) finish ;;
  wait)
    event started
    for _ in $(seq 1200); do [[ -e $root/release ]] && finish; sleep 0.05 & wait $!; done
    exit 9 ;;
  preempt)
    if [[ $w == 0 ]]; then
      echo PREEMPTED >"$root/nodes/$FAKE_NODE/state"
      [[ -d $root/qrs/$FAKE_NODE ]] && echo SUSPENDED >"$root/qrs/$FAKE_NODE/states"
    fi
    exit 143 ;;
  term) echo "jaxssl: stopped by SIGTERM. Resume with the same command:"; exit 0 ;;
  exit1) echo "jaxssl: non-finite loss or gradients at step 2"; exit 1 ;;
  exit2) echo "jaxssl: config error: no such key"; exit 2 ;;
  exit3) echo "jaxssl: workdir is in use by pid 7"; exit 3 ;;
  crash) echo "Segmentation fault"; exit 139 ;;
  vanish) [[ $w == 0 ]] && kill -KILL "$PPID"; exit 0 ;;
esac
"""

FAKE_SINFO = r"""#!/usr/bin/env bash
{ printf '%s\x1f' sinfo "$@"; printf '\x1e'; } >>"$FAKE_ROOT/calls.log"
[[ -n ${FAKE_SINFO_CPUS:-} ]] || exit 1
printf '%s\n' $FAKE_SINFO_CPUS
"""

FAKE_SBATCH = r"""#!/usr/bin/env bash
{ printf '%s\x1f' sbatch "$@"; printf '\x1e'; } >>"$FAKE_ROOT/calls.log"
cat >"$FAKE_ROOT/batch.sh"
echo 4242
"""

FAKE_SCONTROL = r"""#!/usr/bin/env bash
{ printf '%s\x1f' scontrol "$@"; printf '\x1e'; } >>"$FAKE_ROOT/calls.log"
"""

FAKE_SRUN = r"""#!/usr/bin/env bash
root=${FAKE_ROOT:?}
{ printf '%s\x1f' srun "$@"; printf '\x1e'; } >>"$root/calls.log"
echo $$ >"$root/srun.pid"
wd=""
for a in "$@"; do case $a in --workdir=*) wd=${a#--workdir=} ;; esac; done
loop() { touch "$root/srun.ready"; for _ in $(seq 3000); do sleep 0.02 & wait $!; done; exit 9; }
case ${FAKE_SRUN:-ok} in
  ok) mkdir -p "$wd" && echo '{"job": "pretrain"}' >"$wd/jaxssl.done"; exit 0 ;;
  term) exit 0 ;;
  exit*) exit "${FAKE_SRUN#exit}" ;;
  crash) exit 139 ;;
  wait) trap 'echo checkpoint >>"$root/events.log"; exit 0' TERM; loop ;;
  killed) trap 'exit 137' TERM; loop ;;
esac
"""


class Fake:
    """The fake cloud and cluster of one test."""

    def __init__(self, tmp_path: pathlib.Path):
        self.tmp = tmp_path
        self.root = tmp_path / "fake"
        self.bin = self.root / "bin"
        self.bin.mkdir(parents=True)
        scripts = {
            "bin/gcloud": FAKE_GCLOUD,
            "bin/curl": FAKE_CURL,
            "bin/sinfo": FAKE_SINFO,
            "bin/sbatch": FAKE_SBATCH,
            "bin/scontrol": FAKE_SCONTROL,
            "bin/srun": FAKE_SRUN,
            "uv": FAKE_UV,  # installed on the workers by the fake uv installer
            "python": FAKE_PYTHON,  # put in the workers' venv by the fake `uv venv`
        }
        for name, text in scripts.items():
            path = self.root / name
            path.write_text(text)
            path.chmod(0o755)
        (tmp_path / "tmp").mkdir()
        (tmp_path / "launch").symlink_to(ROOT / "launch")  # run from tmp_path, as in README
        self.env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "FAKE_ROOT": str(self.root),
            "HOME": str(tmp_path / "home"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "TMPDIR": str(tmp_path / "tmp"),
            "JAXSSL_LAUNCH_POLL_S": "0.05",
            "JAXSSL_LAUNCH_STOP_S": "20",
        }
        for var in ("CLOUDSDK_CORE_PROJECT", "SLURM_JOB_ID", "SLURM_RESTART_COUNT"):
            self.env.pop(var, None)

    def tokens(self, *tokens: str) -> None:
        """What each start of jaxssl on the workers does, in order (ok when none are left)."""
        (self.root / "tokens").write_text(" ".join(tokens))

    def _records(self, name: str) -> list[list[str]]:
        path = self.root / name
        if not path.exists():
            return []
        return [r.split("\x1f")[:-1] for r in path.read_text().split("\x1e") if r]

    def calls(self, program: str = "gcloud") -> list[list[str]]:
        return [r[1:] for r in self._records("calls.log") if r[0] == program]

    def gcloud(self, *prefix: str) -> list[list[str]]:
        """gcloud calls starting with these words."""
        return [c for c in self.calls() if c[: len(prefix)] == list(prefix)]

    def python_runs(self, worker: int = 0) -> list[list[str]]:
        return [r[1:] for r in self._records("python.log") if r[0] == f"python@{worker}"]

    def events(self) -> list[str]:
        path = self.root / "events.log"
        return path.read_text().splitlines() if path.exists() else []

    def gcs(self, url: str) -> pathlib.Path:
        return self.root / "gcs" / url.removeprefix("gs://")

    def run(self, script: str, *args: str, env: dict | None = None, timeout: float = 60):
        return subprocess.run(
            ["bash", f"launch/{script}", *args],
            cwd=self.tmp,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_default_signals,
        )

    def popen(self, script: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            ["bash", f"launch/{script}", *args],
            cwd=self.tmp,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_signals,
        )

    def wait_for(self, predicate, what: str, timeout: float = 30) -> None:
        end = time.time() + timeout
        while not predicate():
            assert time.time() < end, f"timed out waiting for {what}"
            time.sleep(0.02)

    def release(self) -> None:
        """Lets every waiting fake worker finish."""
        (self.root / "release").touch()


def _default_signals() -> None:
    """The scripts get default dispositions, as a terminal gives them: a test run started in the
    background (`cmd &` without job control) ignores SIGINT, a process may have ignored others,
    and bash cannot trap a signal ignored on entry (its children inherit it too)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.fixture
def fake(tmp_path):
    f = Fake(tmp_path)
    yield f
    f.release()  # no fake worker outlives its test


def tpu_args(*extra: str, accel: str = "v4-8", workdir: str = "gs://bucket/runs/a") -> list:
    return [
        "--name",
        "ssl",
        "--zone",
        "us-central2-b",
        "--accelerator",
        accel,
        "--config",
        "configs/simclr_digits.py",
        "--workdir",
        workdir,
        *extra,
    ]


def remote(call: list[str]) -> str:
    """The --command of a gcloud ssh call."""
    return call[call.index("--command") + 1]


def dry_lines(proc) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return [x for x in proc.stdout.splitlines() if not x.startswith("#")]


# ---------------------------------------------------------------- tpu_vm.sh --dry-run


def test_tpu_vm_dry_run_prints_the_exact_commands(fake):
    proc = fake.run(
        "tpu_vm.sh",
        *tpu_args("--results", "runs/a", "--queued", "--spot", "--dry-run", accel="v4-32"),
        "--",
        "--config.batch_size=4096",
    )
    lines = dry_lines(proc)
    assert (
        shlex.split(lines[0])
        == (
            "gcloud compute tpus queued-resources create ssl --node-id ssl --zone us-central2-b "
            "--accelerator-type v4-32 --runtime-version tpu-ubuntu2204-base --spot "
            "--valid-until-duration 21600s"
        ).split()
    )
    ssh = [shlex.split(x) for x in lines if x.startswith("gcloud compute tpus tpu-vm ssh")]
    install, start = ssh  # both on every worker
    for call in ssh:
        assert call[:-1] == [
            *"gcloud compute tpus tpu-vm ssh ssl --zone us-central2-b --worker=all".split(),
            "--command",
        ]
    assert "uv venv --python 3.11" in remote(install) and '"jax[tpu]"' in remote(install)
    assert "curl -LsSf https://astral.sh/uv/install.sh" in remote(install)
    assert "pip install" not in remote(install).replace("uv pip install", "")  # no system pip
    # Detached: setsid nohup, a log and an exit-code file in the worker's home.
    assert "setsid nohup" in remote(start) and "~/jaxssl-run.exit" in remote(start)
    py = shlex.split(remote(start).split(" jaxssl-run ", 1)[1].split(" > /dev/null")[0])
    assert py == [
        ".venv/bin/python",
        "-m",
        "jaxssl.main",
        "--config=configs/simclr_digits.py",
        "--workdir=gs://bucket/runs/a",
        "--config.batch_size=4096",
    ]
    pack = next(x for x in lines if "ls-files" in x)
    assert (
        "--exclude-standard" in pack and f"-czf {fake.tmp}/tmp/jaxssl-launch." in pack
    )  # per launch
    assert shlex.split(lines[-2]) == [
        "gcloud",
        "storage",
        "rsync",
        "--recursive",
        "--exclude=(^|.*/)checkpoints(_unreadable)?/.*",
        "gs://bucket/runs/a",
        "runs/a",
    ]
    assert lines[-1] == (
        "gcloud compute tpus queued-resources delete ssl --zone us-central2-b --force --quiet"
    )
    order = [
        next(i for i, x in enumerate(lines) if key in x)
        for key in ("create", "tpu-vm scp", "uv venv", "jaxssl.main", "storage rsync", "delete")
    ]
    assert order == sorted(order)
    assert "gsutil" not in proc.stdout
    assert fake.calls() == []  # a dry run runs nothing


@pytest.mark.parametrize(
    "accel, runtime",
    [
        ("v2-8", "tpu-ubuntu2204-base"),
        ("v3-8", "tpu-ubuntu2204-base"),
        ("v4-8", "tpu-ubuntu2204-base"),
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v2-alpha-tpuv5"),
        ("v6e-8", "v2-alpha-tpuv6e"),
    ],
)
def test_tpu_vm_dry_run_picks_the_runtime_of_each_family(fake, accel, runtime):
    lines = dry_lines(fake.run("tpu_vm.sh", *tpu_args("--dry-run", accel=accel)))
    assert lines[0] == (
        f"gcloud compute tpus tpu-vm create ssl --zone us-central2-b --accelerator-type {accel} "
        f"--version {runtime}"
    )
    assert lines[-1] == "gcloud compute tpus tpu-vm delete ssl --zone us-central2-b --quiet"
    assert any("uv venv --python 3.11" in x for x in lines)


def test_tpu_vm_runtime_override_and_unknown_family(fake):
    lines = dry_lines(
        fake.run("tpu_vm.sh", *tpu_args("--dry-run", "--runtime", "v2-alpha-tpuv6e", accel="v6e-8"))
    )
    assert lines[0].endswith("--accelerator-type v6e-8 --version v2-alpha-tpuv6e")
    unknown = fake.run("tpu_vm.sh", *tpu_args("--dry-run", accel="v9x-8"))
    assert unknown.returncode == 2 and "pass --runtime" in unknown.stderr
    assert (
        fake.run("tpu_vm.sh", *tpu_args("--dry-run", "--runtime", "x", accel="v9x-8")).returncode
        == 0
    )


def test_tpu_vm_refuses_a_local_workdir_on_a_pod_and_missing_flags(fake):
    for extra, accel in (
        ((), "v5litepod-16"),
        (("--spot",), "v4-8"),
        (("--queued", "--spot"), "v4-8"),
    ):
        proc = fake.run(
            "tpu_vm.sh", *tpu_args(*extra, "--dry-run", accel=accel, workdir="/tmp/local")
        )
        assert proc.returncode == 2 and "gs://" in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
    missing = fake.run("tpu_vm.sh", "--zone", "z", "--dry-run")
    assert missing.returncode == 2 and "--name is required" in missing.stderr
    assert fake.run("tpu_vm.sh", *tpu_args("--retries", "x")).returncode == 2
    assert fake.run("tpu_vm.sh", *tpu_args("--wait-timeout", "soon")).returncode == 2
    helped = fake.run("tpu_vm.sh", "--help")
    assert helped.returncode == 0 and "--wait-timeout" in helped.stdout
    assert "set -" not in helped.stdout and "configs/simclr_imagenet_resnet50.py" in helped.stdout
    assert fake.calls() == []


# ---------------------------------------------------------------- tpu_vm.sh with fakes


def test_tpu_vm_queued_spot_run_installs_runs_detached_copies_and_deletes(fake):
    fake.tokens("ok")
    proc = fake.run(
        "tpu_vm.sh",
        *tpu_args("--queued", "--spot", "--results", "out", accel="v4-32"),
        "--",
        "--config.batch_size=64",
        env={"FAKE_QR_STATES": "WAITING_FOR_RESOURCES PROVISIONING ACTIVE"},
    )
    assert proc.returncode == 0, proc.stderr
    verbs = [c[3] if c[0] == "compute" else c[1] for c in fake.calls()]
    # create, wait through the states, copy, install, start, follow, marker, copy back, delete.
    assert verbs[:4] == ["create", "describe", "describe", "describe"]
    assert verbs[4:8] == ["scp", "ssh", "ls", "ssh"]
    assert verbs[-4:] == ["ssh", "ls", "rsync", "delete"]
    assert fake.gcloud("compute", "tpus", "queued-resources", "delete") == [
        "compute tpus queued-resources delete ssl --zone us-central2-b --force --quiet".split()
    ]
    # Python 3.11 through uv and the checkout on each of the 4 hosts, jaxssl.main on each.
    assert len(fake.calls("uv")) == 8 and len(fake.calls("curl")) == 4
    expected = [
        "-m",
        "jaxssl.main",
        "--config=configs/simclr_digits.py",
        "--workdir=gs://bucket/runs/a",
        "--config.batch_size=64",
    ]
    for worker in range(4):
        assert fake.python_runs(worker) == [expected]
    # Worker 0's log streamed here; results without checkpoints; missing plots/ tolerated.
    assert "worker 0: step 1" in proc.stdout and "worker 0: finished" in proc.stdout
    assert sorted(p.name for p in (fake.tmp / "out").iterdir()) == [
        "jaxssl.done",
        "metrics.jsonl",
        "summary.json",
    ]
    assert not (fake.root / "nodes" / "ssl").exists()
    assert not (fake.tmp / "state" / "jaxssl" / "tpu_vm" / "ssl.args").exists()


def test_tpu_vm_packs_only_tracked_and_unignored_files(fake):
    fake.tokens("wait")
    proc = fake.popen("tpu_vm.sh", *tpu_args(accel="v4-8"))
    fake.wait_for(lambda: "started worker0" in fake.events(), "the worker to start")
    with tarfile.open(fake.root / "nodes/ssl/worker0/jaxssl-src.tar.gz") as tar:
        names = tar.getnames()
    fake.release()
    assert proc.wait(timeout=30) == 0
    assert "launch/tpu_vm.sh" in names and "jaxssl/train/lock.py" in names
    assert not [n for n in names if n.startswith((".venv", ".git/", "runs/")) or "__pycache__" in n]


@pytest.mark.parametrize("queued", [False, True])
def test_tpu_vm_preemption_recreates_and_resumes(fake, queued):
    fake.tokens("preempt", "ok")
    extra = ("--queued",) if queued else ()
    proc = fake.run("tpu_vm.sh", *tpu_args(*extra, "--spot"))
    assert proc.returncode == 0, proc.stderr
    kind = "queued-resources" if queued else "tpu-vm"
    assert len(fake.gcloud("compute", "tpus", kind, "create")) == 2
    assert len(fake.gcloud("compute", "tpus", kind, "delete")) == 2  # to recreate, at the end
    assert "preempted: recreating ssl" in proc.stderr
    assert len(fake.python_runs(0)) == 2 and fake.python_runs(0)[0] == fake.python_runs(0)[1]
    assert fake.gcs("gs://bucket/runs/a/jaxssl.done").exists()


@pytest.mark.parametrize(
    "token, code, message",
    [
        ("exit1", 1, "non-finite loss"),
        ("exit2", 2, "config error"),
        ("exit3", 3, "locked by a live run"),
        ("crash", 139, "crashed (exit 139)"),
    ],
)
def test_tpu_vm_run_exit_codes_end_the_launch(fake, token, code, message):
    fake.tokens(token, "ok")
    proc = fake.run("tpu_vm.sh", *tpu_args("--spot"))
    assert proc.returncode == code and message in proc.stderr, proc.stderr
    assert "nothing recreated" in proc.stderr
    assert len(fake.gcloud("compute", "tpus", "tpu-vm", "create")) == 1
    assert len(fake.python_runs(0)) == 1
    assert fake.gcloud("compute", "tpus", "tpu-vm", "delete")  # cleaned up
    assert not (fake.root / "nodes" / "ssl").exists()


@pytest.mark.parametrize("token", ["term", "vanish"])
def test_tpu_vm_restarts_on_the_same_vm_after_a_sigterm_stop_or_lost_process(fake, token):
    fake.tokens(token, "ok")
    proc = fake.run("tpu_vm.sh", *tpu_args())
    assert proc.returncode == 0, proc.stderr
    assert len(fake.gcloud("compute", "tpus", "tpu-vm", "create")) == 1
    assert len(fake.calls("curl")) == 1  # installed once
    assert len(fake.python_runs(0)) == 2 and "restarting jaxssl on ssl" in proc.stderr


def test_tpu_vm_an_earlier_runs_marker_does_not_count(fake):
    marker = fake.gcs("gs://bucket/runs/a/jaxssl.done")
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    fake.tokens("term", "ok")
    proc = fake.run("tpu_vm.sh", *tpu_args())
    assert proc.returncode == 0, proc.stderr
    assert len(fake.python_runs(0)) == 2  # the first stop was not taken for the end
    assert fake.gcs("gs://bucket/runs/a/jaxssl.done.prev").exists()


def test_tpu_vm_retries_are_bounded(fake):
    fake.tokens("preempt", "preempt", "preempt", "ok")
    proc = fake.run("tpu_vm.sh", *tpu_args("--spot", "--retries", "1"))
    assert proc.returncode == 4 and "more than --retries 1" in proc.stderr
    assert len(fake.gcloud("compute", "tpus", "tpu-vm", "create")) == 2
    assert not (fake.root / "nodes" / "ssl").exists()


@pytest.mark.parametrize(
    "states, extra, code, message, creates",
    [
        ("WAITING_FOR_RESOURCES FAILED", (), 4, "is FAILED", 1),
        ("PROVISIONING SUSPENDING SUSPENDED|ACTIVE", (), 0, "preempted: recreating", 2),
        (
            "WAITING_FOR_RESOURCES",
            ("--wait-timeout", "1s"),
            4,
            "not ready after --wait-timeout 1s",
            1,
        ),
        ("DELETING", (), 4, "outside this script", 1),
        # FAILED while the run goes on (a training that waits) counts as a preemption too.
        ("ACCEPTED ACTIVE ACTIVE ACTIVE FAILED|ACTIVE", (), 0, "preempted: recreating", 2),
    ],
)
def test_tpu_vm_queued_resource_states(fake, states, extra, code, message, creates):
    fake.tokens("wait" if states.startswith("ACCEPTED") else "ok", "ok")
    proc = fake.run(
        "tpu_vm.sh", *tpu_args("--queued", "--spot", *extra), env={"FAKE_QR_STATES": states}
    )
    assert proc.returncode == code and message in proc.stderr, proc.stderr
    assert len(fake.gcloud("compute", "tpus", "queued-resources", "create")) == creates
    assert fake.gcloud("compute", "tpus", "queued-resources", "delete")
    assert not (fake.root / "qrs" / "ssl").exists()


def test_tpu_vm_cleans_up_after_a_failed_create_or_install(fake):
    failed = fake.run("tpu_vm.sh", *tpu_args(), env={"FAKE_CREATE_FAIL": "1"})
    assert failed.returncode == 4 and "could not create" in failed.stderr
    assert fake.gcloud("compute", "tpus", "tpu-vm", "delete")  # tried, in case it half exists
    assert "does not exist (nothing to delete)" in failed.stderr

    install = fake.run("tpu_vm.sh", *tpu_args(), env={"FAKE_PIP_FAIL": "1"})
    assert install.returncode == 4 and "Python 3.11 (uv)" in install.stderr
    assert not (fake.root / "nodes" / "ssl").exists() and fake.python_runs(0) == []

    kept = fake.run("tpu_vm.sh", *tpu_args("--keep"), env={"FAKE_PIP_FAIL": "1"})
    assert kept.returncode == 4 and "kept TPU VM ssl (--keep)" in kept.stderr
    assert (fake.root / "nodes" / "ssl").exists()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_tpu_vm_ctrl_c_lets_the_workers_checkpoint_then_deletes(fake, sig, code):
    fake.tokens("wait")
    proc = fake.popen("tpu_vm.sh", *tpu_args("--queued", "--spot", accel="v4-32"))
    fake.wait_for(lambda: len(fake.events()) == 4, "the 4 workers")
    fake.wait_for(
        lambda: (
            "worker 0: step 1" in fake.root.joinpath("nodes/ssl/worker0/jaxssl-run.log").read_text()
        ),
        "log",
    )
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert sorted(e for e in fake.events() if e.startswith("TERM")) == [
        f"TERM worker{w}" for w in range(4)
    ]
    assert "workers stopped" in err and "deleting queued resource ssl" in err
    assert fake.gcloud("compute", "tpus", "queued-resources", "delete")
    assert not (fake.root / "qrs" / "ssl").exists()


def test_tpu_vm_ctrl_c_while_waiting_for_capacity_deletes_the_request(fake):
    proc = fake.popen(
        "tpu_vm.sh", *tpu_args("--queued"), env={"FAKE_QR_STATES": "WAITING_FOR_RESOURCES"}
    )
    fake.wait_for(
        lambda: len(fake.gcloud("compute", "tpus", "queued-resources", "describe")) >= 2, "waiting"
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert fake.gcloud("compute", "tpus", "queued-resources", "delete")
    assert not (fake.root / "qrs" / "ssl").exists()


def test_tpu_vm_hangup_leaves_training_running_and_attach_finishes_it(fake):
    fake.tokens("wait")
    proc = fake.popen("tpu_vm.sh", *tpu_args("--spot", "--results", "out"))
    fake.wait_for(lambda: "started worker0" in fake.events(), "the workers")
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 129, err
    assert "launch/tpu_vm.sh --attach ssl" in err
    assert not fake.gcloud("compute", "tpus", "tpu-vm", "delete")
    assert (fake.root / "nodes" / "ssl" / "state").read_text().strip() == "READY"
    assert "TERM worker0" not in fake.events()  # still training

    fake.release()
    attached = fake.run("tpu_vm.sh", "--attach", "ssl")
    assert attached.returncode == 0, attached.stderr
    assert "worker 0: step 1" in attached.stdout and "worker 0: finished" in attached.stdout
    assert len(fake.gcloud("compute", "tpus", "tpu-vm", "create")) == 1  # not recreated
    assert (fake.tmp / "out" / "summary.json").exists()
    assert not (fake.root / "nodes" / "ssl").exists()
    gone = fake.run("tpu_vm.sh", "--attach", "ssl")
    assert gone.returncode == 2 and "no launch named ssl" in gone.stderr


def test_tpu_vm_attach_to_a_preempted_vm_recreates_it(fake):
    saved = fake.tmp / "state" / "jaxssl" / "tpu_vm" / "ssl.args"
    saved.parent.mkdir(parents=True)
    saved.write_text(shlex.join(tpu_args("--spot")))  # as a launch that lost its terminal left it
    node = fake.root / "nodes" / "ssl"
    node.mkdir(parents=True)
    (node / "state").write_text("PREEMPTED\n")
    (node / "accel").write_text("v4-8\n")
    proc = fake.run("tpu_vm.sh", "--attach", "ssl")
    assert proc.returncode == 0, proc.stderr
    assert "ssl is PREEMPTED: recreating it" in proc.stderr
    verbs = [c[3] for c in fake.calls() if c[0] == "compute"]
    assert verbs[:6] == ["describe", "delete", "create", "describe", "scp", "ssh"]
    assert len(fake.python_runs(0)) == 1 and not saved.exists()


def test_tpu_vm_local_workdir_on_one_host(fake):
    proc = fake.run("tpu_vm.sh", *tpu_args("--results", "out", accel="v4-8", workdir="runs/x"))
    assert proc.returncode == 0, proc.stderr
    assert not fake.gcloud("storage")  # marker read on the worker, results copied with scp
    (scp,) = [c for c in fake.gcloud("compute", "tpus", "tpu-vm", "scp") if "--recurse" in c]
    assert "ssl:jaxssl/runs/x" in scp and "--worker=0" in scp
    assert (fake.tmp / "out" / "summary.json").exists()
    assert (fake.tmp / "out" / "checkpoints" / "4" / "state").exists()  # the only copy

    failed = fake.run(
        "tpu_vm.sh",
        *tpu_args("--results", "out2", accel="v4-8", workdir="runs/x"),
        env={"FAKE_SCP_FAIL": "1"},
    )
    assert failed.returncode == 4 and "ssl is kept so nothing is lost" in failed.stderr
    assert (
        fake.root / "nodes" / "ssl" / "worker0" / "jaxssl" / "runs" / "x" / "summary.json"
    ).exists()


# ---------------------------------------------------------------- slurm.sh


def batch_script(dry_run_output: str) -> str:
    return dry_run_output.split("<<'SBATCH'\n", 1)[1].rsplit("SBATCH", 1)[0]


def test_slurm_dry_run_prints_the_batch_script(fake):
    proc = fake.run(
        "slurm.sh",
        "--nodes",
        "2",
        "--gpus-per-node",
        "8",
        "--partition",
        "gpu",
        "--config",
        "configs/simclr_digits.py",
        "--workdir",
        "/shared/runs/a",
        "--dry-run",
        "--",
        "--config.batch_size=1024",
        env={"FAKE_SINFO_CPUS": "128 64+"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=8",  # the smallest node's 64 CPUs / 8 GPUs
        "#SBATCH --signal=TERM@120",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
    ):
        assert line in out
    assert fake.calls("sinfo") == [["--noheader", "--partition", "gpu", "--format=%c"]]
    srun = shlex.split(next(x for x in out if x.startswith("srun")))
    assert srun[:3] == ["srun", "--kill-on-bad-exit=1", "--cpus-per-task=8"]
    assert srun[3:] == [
        "python3",
        "-m",
        "jaxssl.main",
        "--config=configs/simclr_digits.py",
        "--workdir=/shared/runs/a",
        "--config.batch_size=1024",
        "&",
    ]
    assert "summary.json" not in proc.stdout and "jaxssl.done" in proc.stdout
    syntax = subprocess.run(
        ["bash", "-n"], input=batch_script(proc.stdout), capture_output=True, text=True
    )
    assert syntax.returncode == 0, syntax.stderr
    assert not fake.calls("sbatch")


def test_slurm_cpus_per_task_given_or_refused_without_sinfo(fake):
    base = ("--config", "c.py", "--workdir", "w", "--dry-run")
    given = fake.run("slurm.sh", "--cpus-per-task", "12", *base)
    assert "#SBATCH --cpus-per-task=12" in given.stdout.splitlines() and not fake.calls("sinfo")
    refused = fake.run("slurm.sh", *base)
    assert refused.returncode == 2 and "pass --cpus-per-task N" in refused.stderr
    assert fake.run("slurm.sh", "--cpus-per-task", "0", *base).returncode == 2
    gs = fake.run("slurm.sh", "--config", "c.py", "--workdir", "gs://b/w", "--cpus-per-task", "4")
    assert gs.returncode == 2 and "every node mounts" in gs.stderr
    helped = fake.run("slurm.sh", "--help")
    assert helped.returncode == 0 and "PreemptMode=REQUEUE" in helped.stdout
    assert "set -" not in helped.stdout and "--cpus-per-task C" in helped.stdout


def submit(fake, *extra) -> pathlib.Path:
    proc = fake.run(
        "slurm.sh",
        "--config",
        "configs/simclr_digits.py",
        "--workdir",
        "runs/s",
        *extra,
        env={"FAKE_SINFO_CPUS": "96"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "submitted job 4242" in proc.stdout
    assert (fake.tmp / "runs" / "s").is_dir()  # relative: from the current directory
    return fake.root / "batch.sh"


def run_batch(fake, srun: str, restart_count: int = 0, **kw):
    env = {
        **fake.env,
        "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": str(restart_count),
        "FAKE_SRUN": srun,
    }
    return subprocess.Popen(
        ["bash", str(fake.root / "batch.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
        **kw,
    )


@pytest.mark.parametrize(
    "srun, restart_count, code, requeued, message",
    [
        ("ok", 0, 0, False, "finished"),
        ("term", 0, 0, True, "stopped after a checkpoint"),  # time limit: --signal=TERM@120
        ("term", 3, 4, False, "requeued 3 times already"),
        ("exit1", 0, 1, False, "exit 1 (non-finite loss"),
        ("exit2", 0, 2, False, "exit 2 (config error)"),
        ("exit3", 0, 3, False, "exit 3 (workdir locked"),
        ("crash", 0, 139, False, "exit 139 (crashed)"),
    ],
)
def test_slurm_batch_script_requeues_only_an_unfinished_stopped_run(
    fake, srun, restart_count, code, requeued, message
):
    script = submit(fake, "--max-requeues", "3")
    assert fake.calls("sbatch") == [["--parsable"]]
    stale = fake.tmp / "runs" / "s" / "jaxssl.done"
    stale.write_text("{}")  # from an earlier run: must not count
    proc = run_batch(fake, srun, restart_count)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code and message in out + err, out + err
    assert fake.calls("scontrol") == ([["requeue", "4242"]] if requeued else [])
    (srun_call,) = fake.calls("srun")
    assert srun_call[:2] == ["--kill-on-bad-exit=1", "--cpus-per-task=12"]  # 96 CPUs / 8 GPUs
    assert f"--workdir={fake.tmp}/runs/s" in srun_call
    assert (fake.tmp / "runs" / "s" / "jaxssl.done.prev").exists()
    assert "#SBATCH --output=" + str(fake.tmp / "runs/s/slurm-%j.out") in script.read_text()


@pytest.mark.parametrize(
    "srun, message", [("wait", "stopped after a checkpoint"), ("killed", "killed after a SIGTERM")]
)
def test_slurm_preempted_job_requeues_after_sigterm(fake, srun, message):
    submit(fake)
    proc = run_batch(fake, srun)
    fake.wait_for(lambda: (fake.root / "srun.ready").exists(), "srun")
    proc.send_signal(signal.SIGTERM)  # Slurm signals the batch shell and the tasks
    time.sleep(0.2)
    assert proc.poll() is None  # the batch shell waits for the tasks' checkpoint
    os.kill(int((fake.root / "srun.pid").read_text()), signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and message in out, out + err
    assert "waiting for the checkpoint" in out
    assert fake.calls("scontrol") == [["requeue", "4242"]]


# ---------------------------------------------------------------- the workdir lock under Slurm


def write_holder(workdir: pathlib.Path, job, restart="0", host="node-a", pid=None) -> None:
    holder = {"pid": pid or os.getpid(), "host": host, "token": "t", "started": time.time()}
    holder |= {"heartbeat": time.time(), "slurm_job_id": job, "slurm_restart_count": restart}
    (workdir / lock_lib.LOCK_NAME).write_text(json.dumps(holder))  # fresh heartbeat: live


def slurm_env(monkeypatch, job, restart=None) -> None:
    for var, value in (("SLURM_JOB_ID", job), ("SLURM_RESTART_COUNT", restart)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)


@pytest.mark.parametrize(
    "restart, here",
    [
        ("1", False),  # SIGKILLed on node-a a minute ago, requeued onto this host
        ("1", True),  # requeued onto the same host, where its old pid is in use again
        (None, False),  # a Slurm that keeps no restart count: the job id alone decides
    ],
)
def test_requeued_slurm_job_takes_its_own_lock_over_at_once(
    tmp_path, monkeypatch, capsys, restart, here
):
    slurm_env(monkeypatch, "4242", restart)
    host = socket.gethostname() if here else "node-a"
    write_holder(tmp_path, "4242", host=host, pid=os.getpid())  # a live pid, a recent heartbeat
    lock = WorkdirLock(tmp_path)
    lock.acquire()
    try:
        assert lock.took_over["slurm_job_id"] == "4242"
        record = json.loads((tmp_path / lock_lib.LOCK_NAME).read_text())
        assert record["host"] == socket.gethostname() and record["token"] != "t"
        assert record["slurm_job_id"] == "4242" and record["slurm_restart_count"] == (
            restart or "0"
        )
        assert "requeued Slurm job's (4242)" in capsys.readouterr().out
    finally:
        lock.release()


@pytest.mark.parametrize("env_job, holder_job", [("5000", "4242"), (None, "4242"), ("4242", None)])
def test_live_lock_of_another_job_is_still_refused(tmp_path, monkeypatch, env_job, holder_job):
    slurm_env(monkeypatch, env_job, "1")
    write_holder(tmp_path, holder_job)
    with pytest.raises(WorkdirLockedError, match="on host node-a"):
        WorkdirLock(tmp_path).acquire()


def test_same_run_of_a_job_with_a_live_holder_on_this_host_is_refused(tmp_path, monkeypatch):
    slurm_env(monkeypatch, "4242", "2")  # e.g. two srun steps of one run on one workdir
    write_holder(tmp_path, "4242", restart="2", host=socket.gethostname(), pid=os.getpid())
    with pytest.raises(WorkdirLockedError, match="Slurm job 4242"):
        WorkdirLock(tmp_path).acquire()


def test_lock_records_no_job_outside_slurm(tmp_path, monkeypatch):
    slurm_env(monkeypatch, None)
    with WorkdirLock(tmp_path):
        assert json.loads((tmp_path / lock_lib.LOCK_NAME).read_text())["slurm_job_id"] is None


# ---------------------------------------------------------------- the README's commands


def readme_launch_commands() -> list[str]:
    """Commands starting with launch/ in the README's launch section, fenced or inline."""
    text = (ROOT / "README.md").read_text()
    start = text.index("### Worked example: SimCLR ResNet-50 on ImageNet")
    section = text[start : text.index("\n## Data", start)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        commands += [c.strip() for c in block.replace("\\\n", " ").split("\n") if c.strip()]
    prose = re.sub(r"```bash\n.*?```", "", section, flags=re.S)
    commands += re.findall(r"`(launch/[^`]+)`", prose)
    return [" ".join(c.split()) for c in commands if c.startswith("launch/")]


def test_readme_launch_commands_work_verbatim(fake):
    commands = readme_launch_commands()
    tpu = [c for c in commands if c.startswith("launch/tpu_vm.sh --name")]
    attach = [c for c in commands if c.startswith("launch/tpu_vm.sh --attach")]
    slurm = [c for c in commands if c.startswith("launch/slurm.sh")]
    assert len(tpu) == 1 and len(attach) == 1 and len(slurm) == 1, commands
    assert sorted(commands) == sorted(tpu + attach + slurm), (
        "a README command this test does not run"
    )
    env = {**fake.env, "FAKE_QR_STATES": "WAITING_FOR_RESOURCES ACTIVE|ACTIVE"}

    def bash(command, **kw):  # exec: signals reach the script itself
        return subprocess.Popen(
            ["bash", "-c", "exec " + command],
            cwd=fake.tmp,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_default_signals,
            **kw,
        )

    # The pod launch: preempted once and recreated; the terminal closes during the second run;
    # the attach command follows that run to its end, copies the results and deletes.
    fake.tokens("preempt", "wait")
    launch = bash(tpu[0])
    fake.wait_for(lambda: "started worker0" in fake.events(), "the workers")
    launch.send_signal(signal.SIGHUP)
    _, err = launch.communicate(timeout=30)
    assert launch.returncode == 129 and attach[0] in err, err
    assert "preempted: recreating" in err
    fake.release()
    attached = bash(attach[0])
    _, err = attached.communicate(timeout=60)
    assert attached.returncode == 0, err
    args = shlex.split(tpu[0])
    assert len(fake.gcloud("compute", "tpus", "queued-resources", "create")) == 2
    assert len(fake.python_runs(3)) == 2  # all 4 hosts, both times
    assert (fake.tmp / args[args.index("--results") + 1] / "summary.json").exists()
    assert not (fake.root / "qrs" / args[args.index("--name") + 1]).exists()

    # Slurm: submitted with the partition's CPUs split over the GPUs; the job finishes.
    submitted = subprocess.run(
        ["bash", "-c", slurm[0]],
        cwd=fake.tmp,
        env={**env, "FAKE_SINFO_CPUS": "128"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert submitted.returncode == 0, submitted.stderr
    assert "#SBATCH --cpus-per-task=16" in (fake.root / "batch.sh").read_text()
    job = run_batch(fake, "ok")
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0 and "finished" in out, out + err
