#!/usr/bin/env bash
# Submit one jaxssl experiment to a Slurm GPU cluster: one process per GPU (jax's Slurm
# default: local_device_ids=[SLURM_LOCALID]), jax.distributed auto-detected from the Slurm
# environment (config distributed.enabled=auto); each process reads 1/N of the global batch.
# Slurm sends SIGTERM 120 s before the time limit (or on preemption); jaxssl checkpoints and
# exits 0, and the job requeues itself until summary.json exists, resuming from the workdir.
# --dry-run prints the batch script and the sbatch command instead of submitting.
#
#   launch/slurm.sh --nodes 2 --gpus-per-node 8 --partition gpu --time 24:00:00 \
#     --config configs/simclr_imagenet.py --workdir /shared/runs/simclr_r50 \
#     -- --config.dataset.data_dir=/shared/tfds
set -euo pipefail

NODES=1 GPUS=8 PARTITION="" TIME="24:00:00" ACCOUNT="" CONFIG="" WORKDIR="" VENV="" DRY=0
JOBNAME="jaxssl" EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) NODES="$2"; shift 2 ;;
    --gpus-per-node) GPUS="$2"; shift 2 ;;
    --partition) PARTITION="$2"; shift 2 ;;
    --time) TIME="$2"; shift 2 ;;
    --account) ACCOUNT="$2"; shift 2 ;;
    --job-name) JOBNAME="$2"; shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      echo "Options: --nodes N --gpus-per-node G --partition P --time HH:MM:SS --account A"
      echo "         --job-name NAME --venv DIR --config FILE --workdir DIR (shared fs) --dry-run"
      echo "         -- ARGS (extra jaxssl.main arguments)"
      exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "slurm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$CONFIG" || -z "$WORKDIR" ]]; then
  echo "slurm.sh: --config and --workdir are required (see --help)" >&2
  exit 2
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="python3"
[[ -n "$VENV" ]] && PY="$VENV/bin/python"
MAIN=("$PY" -m jaxssl.main "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}")

SCRIPT="#!/usr/bin/env bash
#SBATCH --job-name=$JOBNAME
#SBATCH --nodes=$NODES
#SBATCH --ntasks-per-node=$GPUS
#SBATCH --gpus-per-node=$GPUS
#SBATCH --time=$TIME
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=$WORKDIR/slurm-%j.out"
[[ -n "$PARTITION" ]] && SCRIPT+=$'\n'"#SBATCH --partition=$PARTITION"
[[ -n "$ACCOUNT" ]] && SCRIPT+=$'\n'"#SBATCH --account=$ACCOUNT"
SCRIPT+="
set -uo pipefail
cd $(printf '%q' "$REPO")
srun --kill-on-bad-exit=1 $(printf '%q ' "${MAIN[@]}")
status=\$?
if [[ \$status -eq 0 && ! -f $(printf '%q' "$WORKDIR")/summary.json ]]; then
  scontrol requeue \"\$SLURM_JOB_ID\"  # stopped by SIGTERM after a checkpoint: continue later
fi
exit \$status
"

if [[ $DRY -eq 1 ]]; then
  echo "mkdir -p $(printf '%q' "$WORKDIR")"
  echo "sbatch --parsable <<'SBATCH'"
  printf '%s' "$SCRIPT"
  echo "SBATCH"
  exit 0
fi
mkdir -p "$WORKDIR"
sbatch --parsable <<<"$SCRIPT"
