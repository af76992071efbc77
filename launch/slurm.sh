#!/usr/bin/env bash
# Submit one jaxssl experiment to a Slurm GPU cluster: one process per GPU (jax's Slurm
# default: local_device_ids=[SLURM_LOCALID]) with its share of the node's CPUs for data
# loading, jax.distributed auto-detected from the Slurm environment; each process reads 1/N
# of the global batch. The job requeues itself until the run writes WORKDIR/jaxssl.done.
#
# Time limit: --signal=TERM@120 reaches every task 120 s early; jaxssl checkpoints, exits 0
# without the marker, and the job requeues itself (scontrol requeue, same job id).
# Preemption: Slurm sends SIGTERM to every process of the job, then SIGKILL after the
# partition's GraceTime (KillWait when GraceTime is 0). With PreemptMode=REQUEUE Slurm requeues
# the job itself (it is submitted with --requeue); with PreemptMode=CANCEL this script asks for
# the requeue when the tasks end after that SIGTERM; with SUSPEND the job just pauses. A task
# killed before its checkpoint resumes from the previous one, and the requeued job (same
# SLURM_JOB_ID) takes the workdir lock over at once. Requeues stop after --max-requeues.
# Exit codes 1 (non-finite loss), 2 (config error), 3 (workdir locked) are never requeued.
# --dry-run prints the batch script and the sbatch command instead of submitting.
#
#   launch/slurm.sh --nodes 2 --gpus-per-node 8 --partition gpu --time 24:00:00 \
#     --config configs/simclr_imagenet_resnet50.py --workdir runs/simclr_r50 \
#     -- --config.dataset.data_dir=/shared/tfds
set -uo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"  # the header
  cat <<'USAGE'

Options:
  --nodes N              nodes (default 1)
  --gpus-per-node G      GPUs and processes per node (default 8)
  --cpus-per-task C      CPUs per process (default: the partition's CPUs per node from
                         sinfo, divided by G)
  --partition P          partition (default: the cluster's)
  --time HH:MM:SS        time limit of one run of the job (default 24:00:00)
  --account A            account to charge
  --job-name NAME        job name (default jaxssl)
  --venv DIR             virtual environment with jaxssl installed, on the shared filesystem
                         (default: python3 on the PATH of the compute nodes)
  --max-requeues N       at most N requeues (time limit, preemption) (default 20)
  --config FILE          experiment config, relative to the repo root (required)
  --workdir DIR          run directory on a filesystem every node mounts; a relative path
                         is taken from the current directory (required)
  --dry-run              print the batch script and the sbatch command, submit nothing
  -- ARGS                extra arguments for jaxssl.main
USAGE
}
die() { local code=$1; shift; echo "slurm.sh: $*" >&2; exit "$code"; }

NODES=1 GPUS=8 CPUS=auto PARTITION="" TIME="24:00:00" ACCOUNT="" CONFIG="" WORKDIR="" VENV=""
DRY=0 JOBNAME="jaxssl" MAX_REQUEUES=20 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) NODES="${2-}"; shift 2 || die 2 "--nodes needs a value" ;;
    --gpus-per-node) GPUS="${2-}"; shift 2 || die 2 "--gpus-per-node needs a value" ;;
    --cpus-per-task) CPUS="${2-}"; shift 2 || die 2 "--cpus-per-task needs a value" ;;
    --partition) PARTITION="${2-}"; shift 2 || die 2 "--partition needs a value" ;;
    --time) TIME="${2-}"; shift 2 || die 2 "--time needs a value" ;;
    --account) ACCOUNT="${2-}"; shift 2 || die 2 "--account needs a value" ;;
    --job-name) JOBNAME="${2-}"; shift 2 || die 2 "--job-name needs a value" ;;
    --venv) VENV="${2-}"; shift 2 || die 2 "--venv needs a value" ;;
    --max-requeues) MAX_REQUEUES="${2-}"; shift 2 || die 2 "--max-requeues needs a value" ;;
    --config) CONFIG="${2-}"; shift 2 || die 2 "--config needs a value" ;;
    --workdir) WORKDIR="${2-}"; shift 2 || die 2 "--workdir needs a value" ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die 2 "unknown option $1 (see --help)" ;;
  esac
done
[[ -n "$CONFIG" && -n "$WORKDIR" ]] || die 2 "--config and --workdir are required (see --help)"
for n in NODES GPUS MAX_REQUEUES; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die 2 "--$(tr '[:upper:]_' '[:lower:]-' <<<"$n" | sed 's/^gpus$/gpus-per-node/') ${!n}: a whole number"
done
[[ "$WORKDIR" == *://* ]] && die 2 "--workdir must be a path on a filesystem every node mounts, not $WORKDIR"
WORKDIR=$(realpath -m "$WORKDIR")
if [[ "$CPUS" == auto ]]; then
  # Logical CPUs of the partition's smallest node; without this each of the G processes of a
  # node may get a single core where Slurm binds tasks to cores, starving data loading.
  part=()
  [[ -n "$PARTITION" ]] && part=(--partition "$PARTITION")
  node_cpus=$(sinfo --noheader "${part[@]}" --format=%c 2>/dev/null | tr -dc '0-9\n' | sed '/^$/d' | sort -n | head -n 1)
  [[ -n "$node_cpus" ]] || die 2 "could not read the CPUs per node with sinfo: pass --cpus-per-task N (cores per node / --gpus-per-node)"
  CPUS=$((node_cpus / (GPUS > 0 ? GPUS : 1)))
  [[ $CPUS -lt 1 ]] && CPUS=1
fi
[[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die 2 "--cpus-per-task $CPUS: a whole number"

REPO="$(cd -P "$(dirname "$0")/.." && pwd)"
PY="python3"
[[ -n "$VENV" ]] && PY="$VENV/bin/python"
MAIN=("$PY" -m jaxssl.main "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}")
q() { printf '%q' "$1"; }

SCRIPT="#!/usr/bin/env bash
#SBATCH --job-name=$JOBNAME
#SBATCH --nodes=$NODES
#SBATCH --ntasks-per-node=$GPUS
#SBATCH --gpus-per-node=$GPUS
#SBATCH --cpus-per-task=$CPUS
#SBATCH --time=$TIME
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=$WORKDIR/slurm-%j.out"
[[ -n "$PARTITION" ]] && SCRIPT+=$'\n'"#SBATCH --partition=$PARTITION"
[[ -n "$ACCOUNT" ]] && SCRIPT+=$'\n'"#SBATCH --account=$ACCOUNT"
SCRIPT+="
# Written by launch/slurm.sh. Done when the run writes its completion marker; requeued (same
# job id, at most $MAX_REQUEUES times) when it stopped after a SIGTERM (time limit, preemption).
set -uo pipefail
cd $(q "$REPO") || exit 4
MARKER=$(q "$WORKDIR/jaxssl.done")
# A marker left by an earlier run in this workdir must not count as this run's.
[[ -f \"\$MARKER\" ]] && mv -f \"\$MARKER\" \"\$MARKER.prev\"
echo \"slurm.sh: job \${SLURM_JOB_ID:-?} start \$(( \${SLURM_RESTART_COUNT:-0} + 1 )) on \$(hostname)\"
TERMED=0
trap 'TERMED=1; echo \"slurm.sh: SIGTERM (preemption or time limit): waiting for the checkpoint\"' TERM
# srun does not inherit --cpus-per-task from sbatch (Slurm >= 22.05): give it again.
srun --kill-on-bad-exit=1 --cpus-per-task=$CPUS $(printf '%q ' "${MAIN[@]}")&
SRUN=\$!
while :; do  # a trapped SIGTERM interrupts wait: wait again until srun itself ends
  wait \"\$SRUN\"; status=\$?
  kill -0 \"\$SRUN\" 2>/dev/null || break
done
requeue() {
  if [[ \${SLURM_RESTART_COUNT:-0} -ge $MAX_REQUEUES ]]; then
    echo \"slurm.sh: \$1; requeued $MAX_REQUEUES times already (--max-requeues): not again; the checkpoint in the workdir is kept\" >&2
    exit 4
  fi
  echo \"slurm.sh: \$1: requeueing job \$SLURM_JOB_ID; it resumes from the workdir\"
  scontrol requeue \"\$SLURM_JOB_ID\" || echo \"slurm.sh: scontrol requeue failed (PreemptMode=REQUEUE requeues a preempted job itself)\" >&2
  exit 0
}
if [[ -f \"\$MARKER\" ]]; then echo \"slurm.sh: finished (\$MARKER)\"; exit \"\$status\"; fi
case \$status in
  0) requeue \"stopped after a checkpoint (SIGTERM: time limit or preemption)\" ;;
  1) echo \"slurm.sh: exit 1 (non-finite loss, or srun failed): not requeued\" >&2 ;;
  2) echo \"slurm.sh: exit 2 (config error): not requeued\" >&2 ;;
  3) echo \"slurm.sh: exit 3 (workdir locked by a live run): not requeued\" >&2 ;;
  *) [[ \$TERMED -eq 1 ]] && requeue \"killed after a SIGTERM (exit \$status)\"
     echo \"slurm.sh: exit \$status (crashed): not requeued\" >&2 ;;
esac
exit \"\$status\"
"

if [[ $DRY -eq 1 ]]; then
  echo "mkdir -p $(q "$WORKDIR")"
  echo "sbatch --parsable <<'SBATCH'"
  printf '%s' "$SCRIPT"
  echo "SBATCH"
  exit 0
fi
mkdir -p "$WORKDIR" || die 4 "cannot create $WORKDIR"
job=$(sbatch --parsable <<<"$SCRIPT") || die 4 "sbatch failed"
echo "slurm.sh: submitted job $job; log: $WORKDIR/slurm-${job%%;*}.out"
