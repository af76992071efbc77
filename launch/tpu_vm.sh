#!/usr/bin/env bash
# Run one jaxssl experiment on a Cloud TPU VM (single host or pod slice), end to end:
# create the VM (or a queued resource), install this checkout on every worker, run the same
# `python -m jaxssl.main` on --worker=all (logs streamed here), copy results back, delete.
# A preempted spot/queued VM is recreated and the same command resumes from the checkpoint in
# the gs:// workdir (--retries). --dry-run prints every command instead of running it.
#
#   launch/tpu_vm.sh --name ssl-v4 --zone us-central2-b --accelerator v4-32 \
#     --config configs/simclr_imagenet.py --workdir gs://BUCKET/runs/simclr_r50 \
#     --results runs/simclr_r50 -- --config.dataset.data_dir=gs://BUCKET/tfds
set -euo pipefail

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'USAGE'
Options:
  --name NAME            TPU VM / queued resource name (required)
  --zone ZONE            e.g. us-central2-b (v4), us-west4-a (v5e) (required)
  --accelerator TYPE     e.g. v4-32, v5litepod-16 (required)
  --version VERSION      TPU software version (default: tpu-ubuntu2204-base)
  --project PROJECT      gcloud project (default: gcloud's configured one)
  --config FILE          experiment config, relative to the repo root (required)
  --workdir DIR          run directory; use gs://... on pods so every worker sees it (required)
  --results DIR          local folder to copy the workdir into at the end (optional)
  --queued               create through a queued resource (waits for capacity)
  --spot                 spot capacity (preemptible; resumes via --retries)
  --retries N            recreate + rerun after a preemption up to N times (default: 3)
  --keep                 do not delete the VM at the end
  --dry-run              print the commands, run nothing
  -- ARGS                extra arguments for jaxssl.main (e.g. --config.batch_size=4096)
USAGE
}

NAME="" ZONE="" ACCEL="" VERSION="tpu-ubuntu2204-base" PROJECT="" CONFIG="" WORKDIR=""
RESULTS="" QUEUED=0 SPOT=0 RETRIES=3 KEEP=0 DRY=0 EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) NAME="$2"; shift 2 ;;
    --zone) ZONE="$2"; shift 2 ;;
    --accelerator) ACCEL="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --project) PROJECT="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --results) RESULTS="$2"; shift 2 ;;
    --queued) QUEUED=1; shift ;;
    --spot) SPOT=1; shift ;;
    --retries) RETRIES="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "tpu_vm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for req in NAME ZONE ACCEL CONFIG WORKDIR; do
  if [[ -z "${!req}" ]]; then
    echo "tpu_vm.sh: --$(tr '[:upper:]' '[:lower:]' <<<"$req" | sed 's/accel/accelerator/') is required (see --help)" >&2
    exit 2
  fi
done
if [[ "$ACCEL" != *-8 && "$ACCEL" != *-4 && "$ACCEL" != *-1 && "$WORKDIR" != gs://* ]]; then
  echo "tpu_vm.sh: $ACCEL has several hosts: --workdir must be gs://... so all workers share it" >&2
  exit 2
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
GC=(gcloud)
[[ -n "$PROJECT" ]] && GC+=(--project "$PROJECT")
TARBALL="/tmp/jaxssl-src.tar.gz"

run() {  # print (dry run) or execute one command, shell-quoted exactly as it would run
  if [[ $DRY -eq 1 ]]; then printf '%q ' "$@" | sed 's/ $//'; echo; else "$@"; fi
}

create() {
  local spot=()
  if [[ $QUEUED -eq 1 ]]; then
    [[ $SPOT -eq 1 ]] && spot=(--spot)
    run "${GC[@]}" compute tpus queued-resources create "$NAME" --node-id "$NAME" \
      --zone "$ZONE" --accelerator-type "$ACCEL" --runtime-version "$VERSION" "${spot[@]}"
    if [[ $DRY -eq 1 ]]; then
      echo "# wait until: gcloud compute tpus queued-resources describe $NAME --zone $ZONE --format='value(state.state)' prints ACTIVE"
    else
      until [[ "$("${GC[@]}" compute tpus queued-resources describe "$NAME" --zone "$ZONE" \
                 --format='value(state.state)')" == ACTIVE ]]; do sleep 30; done
    fi
  else
    [[ $SPOT -eq 1 ]] && spot=(--spot)
    run "${GC[@]}" compute tpus tpu-vm create "$NAME" --zone "$ZONE" \
      --accelerator-type "$ACCEL" --version "$VERSION" "${spot[@]}"
  fi
}

delete() {
  if [[ $QUEUED -eq 1 ]]; then
    run "${GC[@]}" compute tpus queued-resources delete "$NAME" --zone "$ZONE" --force --quiet
  else
    run "${GC[@]}" compute tpus tpu-vm delete "$NAME" --zone "$ZONE" --quiet
  fi
}

ssh_all() {  # the same command on every worker; output of all workers streams here
  run "${GC[@]}" compute tpus tpu-vm ssh "$NAME" --zone "$ZONE" --worker=all --command "$1"
}

install() {
  run tar -czf "$TARBALL" -C "$REPO" --exclude=.git --exclude=runs --exclude='*.egg-info' .
  run "${GC[@]}" compute tpus tpu-vm scp "$TARBALL" "$NAME:~/jaxssl-src.tar.gz" \
    --zone "$ZONE" --worker=all
  ssh_all "mkdir -p ~/jaxssl && tar -xzf ~/jaxssl-src.tar.gz -C ~/jaxssl && pip install -q -U 'jax[tpu]' && pip install -q -e ~/jaxssl"
}

main_cmd() {
  local args=(python3 -m jaxssl.main "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}")
  printf 'cd ~/jaxssl && '
  printf '%q ' "${args[@]}" | sed 's/ $//'
}

finished() {  # summary.json appears only when the run (and its evaluation) completed
  if [[ $DRY -eq 1 ]]; then return 0; fi
  if [[ "$WORKDIR" == gs://* ]]; then gsutil -q stat "$WORKDIR/summary.json"; else
    "${GC[@]}" compute tpus tpu-vm ssh "$NAME" --zone "$ZONE" --worker=0 \
      --command "test -f $WORKDIR/summary.json"; fi
}

attempt=0
while :; do
  create
  install
  # jax.distributed.initialize() auto-detects the pod (config distributed.enabled=auto).
  ssh_all "$(main_cmd)" || true
  if finished; then break; fi
  attempt=$((attempt + 1))
  if [[ $attempt -gt $RETRIES ]]; then
    echo "tpu_vm.sh: not finished after $RETRIES retries; the checkpoint in $WORKDIR is kept" >&2
    [[ $KEEP -eq 0 ]] && delete
    exit 1
  fi
  echo "tpu_vm.sh: run interrupted (preempted?): recreating $NAME, resuming from $WORKDIR" >&2
  delete
done

if [[ -n "$RESULTS" ]]; then
  run mkdir -p "$RESULTS"
  if [[ "$WORKDIR" == gs://* ]]; then
    run gsutil -m cp -r "$WORKDIR/*.json" "$WORKDIR/*.jsonl" "$WORKDIR/plots" "$RESULTS/"
  else
    run "${GC[@]}" compute tpus tpu-vm scp --recurse "$NAME:$WORKDIR" "$RESULTS" \
      --zone "$ZONE" --worker=0
  fi
fi
[[ $KEEP -eq 0 ]] && delete
exit 0
