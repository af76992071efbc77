#!/usr/bin/env bash
# Run one jaxssl experiment on a Cloud TPU VM (one host or a pod slice), end to end: create
# the VM (or a queued resource), install this checkout with Python 3.11 (uv) and jax[tpu] on
# every worker, start `python -m jaxssl.main` detached on every worker, follow worker 0's log,
# copy the results back and delete the VM. Whatever ends the script (success, a failed step,
# Ctrl-C) deletes what it created, unless --keep. A preempted VM (state PREEMPTED, or a queued
# resource SUSPENDED/FAILED) is recreated and the same command resumes from the checkpoint in
# the gs:// workdir, at most --retries times. --dry-run prints the commands instead.
#
#   launch/tpu_vm.sh --name ssl-v4 --zone us-central2-b --accelerator v4-32 --queued --spot \
#     --config configs/simclr_imagenet_resnet50.py --workdir gs://BUCKET/runs/simclr_r50 \
#     --results runs/simclr_r50 -- --config.dataset.data_dir=gs://BUCKET/tfds
#   launch/tpu_vm.sh --attach ssl-v4    # follow again after the terminal was closed
set -uo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"  # the header
  cat <<'USAGE'

Options:
  --name NAME              TPU VM / queued resource name (required)
  --zone ZONE              e.g. us-central2-b (v4), us-west4-a (v5e) (required)
  --accelerator TYPE       e.g. v4-32, v5litepod-16, v5p-8, v6e-8 (required)
  --runtime VERSION        TPU software version (default by family: v2/v3/v4
                           tpu-ubuntu2204-base, v5litepod v2-alpha-tpuv5-lite,
                           v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e); --version is an alias
  --project PROJECT        gcloud project (default: gcloud's configured one)
  --config FILE            experiment config, relative to the repo root (required)
  --workdir DIR            run directory; gs://... (required for pods and --spot), or a
                           path on the single worker (relative to the checkout there)
  --results DIR            local folder the results are copied into (checkpoints excluded
                           for a gs:// workdir)
  --queued                 create through a queued resource (waits for capacity)
  --spot                   spot capacity (preemptible; recreated up to --retries times)
  --retries N              recreate/restart after a preemption at most N times (default: 3)
  --wait-timeout DUR       longest wait for capacity or for a VM to become ready, e.g. 90m,
                           6h, 3600 (seconds) (default: 6h)
  --valid-until-duration DUR  queued resources only: the request expires after DUR
                           (default: the --wait-timeout)
  --keep                   do not delete the VM when the script ends
  --attach NAME            follow a launch again (after the terminal closed), with the
                           options it was started with; then finish it as usual
  --dry-run                print the commands, run nothing
  -- ARGS                  extra arguments for jaxssl.main (e.g. --config.batch_size=4096)

Exit codes: 0 finished (completion marker WORKDIR/jaxssl.done written); 1 the run stopped
on a non-finite loss; 2 config or usage error; 3 the workdir is locked by a live run;
4 cloud failure (no capacity, timeout, install, copy, retries used up); 129/130/143 hangup
(workers keep running), Ctrl-C, SIGTERM; any other code is the crashed run's own.
Environment: JAXSSL_LAUNCH_POLL_S (seconds between status checks, default 30),
JAXSSL_LAUNCH_STOP_S (how long Ctrl-C waits for the workers' checkpoint, default 180).
USAGE
}

PROG=tpu_vm.sh
say() { echo "$PROG: $*" >&2; }
die() { local code=$1; shift; say "$*"; exit "$code"; }

NAME="" ZONE="" ACCEL="" RUNTIME="" PROJECT="" CONFIG="" WORKDIR="" RESULTS="" QUEUED=0 SPOT=0
RETRIES=3 WAIT_TIMEOUT=6h VALID_UNTIL="" KEEP=0 DRY=0 ATTACH="" EXTRA=()
parse() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) NAME="${2-}"; shift 2 || die 2 "--name needs a value" ;;
      --zone) ZONE="${2-}"; shift 2 || die 2 "--zone needs a value" ;;
      --accelerator) ACCEL="${2-}"; shift 2 || die 2 "--accelerator needs a value" ;;
      --runtime|--version) RUNTIME="${2-}"; shift 2 || die 2 "$1 needs a value" ;;
      --project) PROJECT="${2-}"; shift 2 || die 2 "--project needs a value" ;;
      --config) CONFIG="${2-}"; shift 2 || die 2 "--config needs a value" ;;
      --workdir) WORKDIR="${2-}"; shift 2 || die 2 "--workdir needs a value" ;;
      --results) RESULTS="${2-}"; shift 2 || die 2 "--results needs a value" ;;
      --queued) QUEUED=1; shift ;;
      --spot) SPOT=1; shift ;;
      --retries) RETRIES="${2-}"; shift 2 || die 2 "--retries needs a value" ;;
      --wait-timeout) WAIT_TIMEOUT="${2-}"; shift 2 || die 2 "--wait-timeout needs a value" ;;
      --valid-until-duration) VALID_UNTIL="${2-}"; shift 2 || die 2 "$1 needs a value" ;;
      --keep) KEEP=1; shift ;;
      --attach) ATTACH="${2-}"; shift 2 || die 2 "--attach needs a NAME" ;;
      --dry-run) DRY=1; shift ;;
      -h|--help) usage; exit 0 ;;
      --) shift; EXTRA=("$@"); return ;;
      *) die 2 "unknown option $1 (see --help)" ;;
    esac
  done
}
ORIG_ARGS=("$@")
parse "$@"

STATE_DIR="${XDG_STATE_HOME:-$HOME/.local/state}/jaxssl/tpu_vm"
if [[ -n "$ATTACH" ]]; then  # the saved options first, then what this command line adds
  [[ -f "$STATE_DIR/$ATTACH.args" ]] || die 2 "no launch named $ATTACH was started from" \
    "this machine ($STATE_DIR/$ATTACH.args is missing): run the launch command again"
  eval "SAVED=($(cat "$STATE_DIR/$ATTACH.args"))"
  ATTACH_NAME=$ATTACH DRY_NOW=$DRY KEEP_NOW=$KEEP
  parse "${SAVED[@]}"
  ATTACH=$ATTACH_NAME
  [[ $DRY_NOW -eq 1 ]] && DRY=1
  [[ $KEEP_NOW -eq 1 ]] && KEEP=1
fi

for req in NAME ZONE ACCEL CONFIG WORKDIR; do
  if [[ -z "${!req}" ]]; then
    flag=$(tr '[:upper:]' '[:lower:]' <<<"$req" | sed 's/^accel$/accelerator/')
    die 2 "--$flag is required (see --help)"
  fi
done

seconds_of() {  # 90, 90s, 30m, 6h, 1d, 1h30m -> seconds
  local rest=$1 total=0 n u
  [[ "$rest" =~ ^[0-9]+$ ]] && { echo "$rest"; return 0; }
  [[ "$rest" =~ ^([0-9]+[smhd])+$ ]] || return 1
  while [[ "$rest" =~ ^([0-9]+)([smhd])(.*)$ ]]; do
    n=${BASH_REMATCH[1]} u=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
    case $u in s) total=$((total + n)) ;; m) total=$((total + 60 * n)) ;;
      h) total=$((total + 3600 * n)) ;; d) total=$((total + 86400 * n)) ;; esac
  done
  echo "$total"
}
WAIT_S=$(seconds_of "$WAIT_TIMEOUT") || die 2 "--wait-timeout $WAIT_TIMEOUT: use e.g. 90m, 6h or seconds"
[[ -z "$VALID_UNTIL" ]] && VALID_UNTIL="${WAIT_S}s"
[[ "$RETRIES" =~ ^[0-9]+$ ]] || die 2 "--retries $RETRIES: a whole number"
POLL_S="${JAXSSL_LAUNCH_POLL_S:-30}"
STOP_S="${JAXSSL_LAUNCH_STOP_S:-180}"

# The TPU software version by accelerator family (Cloud TPU "runtime versions" page).
if [[ -z "$RUNTIME" ]]; then
  case "$ACCEL" in
    v2-*|v3-*|v4-*) RUNTIME=tpu-ubuntu2204-base ;;
    v5litepod-*|v5e-*) RUNTIME=v2-alpha-tpuv5-lite ;;
    v5p-*) RUNTIME=v2-alpha-tpuv5 ;;
    v6e-*) RUNTIME=v2-alpha-tpuv6e ;;
    *) die 2 "no default runtime for accelerator $ACCEL: pass --runtime VERSION" ;;
  esac
fi
[[ "$ACCEL" =~ -([0-9]+)$ ]] || die 2 "--accelerator $ACCEL: expected a type like v4-32 or v5litepod-16"
CORES=${BASH_REMATCH[1]}
if [[ "$WORKDIR" != gs://* ]]; then
  # Several hosts must share the workdir, and a spot VM's disk goes away with a preemption.
  [[ $CORES -gt 8 ]] && die 2 "$ACCEL has several hosts: --workdir must be gs://... so every worker shares it"
  [[ $SPOT -eq 1 ]] && die 2 "--spot needs a gs://... --workdir: a local one is deleted with a preempted VM, so nothing could resume"
fi

REPO="$(cd -P "$(dirname "$0")/.." && pwd)"
GC=(gcloud)
[[ -n "$PROJECT" ]] && GC+=(--project "$PROJECT")
if [[ $QUEUED -eq 1 ]]; then KIND="queued resource"; else KIND="TPU VM"; fi
MARKER="$WORKDIR/jaxssl.done"  # written by every job that finished (jaxssl/jobs.py)
# shellcheck disable=SC2088  # expanded on the worker
LOG='~/jaxssl-run.log'

q() { printf '%q' "$1"; }
qq() {  # shell-quoted for reading back, in single quotes where it needs quoting at all
  local sq="'\\''"
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf '%s' "$1"
  else printf "'%s'" "${1//\'/$sq}"; fi
}
show() {  # one command line, quoted so that a shell (or shlex.split) reads it back exactly
  local a out=()
  for a in "$@"; do out+=("$(qq "$a")"); done
  echo "${out[*]}"
}
run() {  # print (dry run) or execute one command
  if [[ $DRY -eq 1 ]]; then show "$@"; else "$@"; fi
}
pause() { sleep "$POLL_S" & wait $!; }  # a trapped signal ends the wait at once

# ---- the resource --------------------------------------------------------------------------
OWNED=0 STARTED=0 DETACHED=0 STOP_NOW=0 TMPD=""
create_cmd() {
  local spot=()
  [[ $SPOT -eq 1 ]] && spot=(--spot)
  if [[ $QUEUED -eq 1 ]]; then
    CMD=("${GC[@]}" compute tpus queued-resources create "$NAME" --node-id "$NAME" --zone "$ZONE"
      --accelerator-type "$ACCEL" --runtime-version "$RUNTIME" "${spot[@]}"
      --valid-until-duration "$VALID_UNTIL")
  else
    CMD=("${GC[@]}" compute tpus tpu-vm create "$NAME" --zone "$ZONE" --accelerator-type "$ACCEL"
      --version "$RUNTIME" "${spot[@]}")
  fi
}
delete_cmd() {
  if [[ $QUEUED -eq 1 ]]; then
    CMD=("${GC[@]}" compute tpus queued-resources delete "$NAME" --zone "$ZONE" --force --quiet)
  else
    CMD=("${GC[@]}" compute tpus tpu-vm delete "$NAME" --zone "$ZONE" --quiet)
  fi
}
state_cmd() {
  if [[ $QUEUED -eq 1 ]]; then
    CMD=("${GC[@]}" compute tpus queued-resources describe "$NAME" --zone "$ZONE"
      '--format=value(state.state)')
  else
    CMD=("${GC[@]}" compute tpus tpu-vm describe "$NAME" --zone "$ZONE" '--format=value(state)')
  fi
}
read_state() { state_cmd; "${CMD[@]}" 2>/dev/null | tr -d '[:space:]'; }
# What a state means here: ready, wait (transitional), preempted, failed, gone.
classify() {
  if [[ $QUEUED -eq 1 ]]; then
    case "$1" in
      ACTIVE) echo ready ;;
      CREATING|ACCEPTED|WAITING_FOR_RESOURCES|PROVISIONING|STATE_UNSPECIFIED) echo wait ;;
      SUSPENDING|SUSPENDED) echo preempted ;;  # spot capacity taken back: never reallocated
      FAILED) echo failed ;;                    # stays FAILED until deleted
      DELETING) echo gone ;;
      "") echo unknown ;;
      *) echo wait ;;
    esac
  else
    case "$1" in
      READY) echo ready ;;
      PREEMPTED|TERMINATED) echo preempted ;;
      CREATING|STARTING|RESTARTING|REIMAGING|REPAIRING|UNHIDING|STATE_UNSPECIFIED|UNKNOWN) echo wait ;;
      DELETING|STOPPING|STOPPED|HIDING|HIDDEN) echo gone ;;
      "") echo unknown ;;
      *) echo wait ;;
    esac
  fi
}

delete_resource() {
  delete_cmd
  say "deleting $KIND $NAME"
  "${CMD[@]}"
}

create() {  # create and wait until usable; returns 0, or 10 when it was preempted on the way
  create_cmd
  OWNED=1  # from here on the exit trap deletes it, even if the create itself is interrupted
  if [[ $DRY -eq 1 ]]; then
    show "${CMD[@]}"
    state_cmd
    echo "# wait at most ${WAIT_S} s until $(show "${CMD[@]}") prints $( [[ $QUEUED -eq 1 ]] && echo ACTIVE || echo READY) (SUSPENDED: recreate; FAILED: give up)"
    return 0
  fi
  say "creating $KIND $NAME ($ACCEL, runtime $RUNTIME$( [[ $SPOT -eq 1 ]] && echo ', spot'))"
  "${CMD[@]}" || die 4 "could not create $KIND $NAME (no capacity in $ZONE? --queued waits for it)"
  local start=$SECONDS state fails=0 last=""
  while :; do
    state=$(read_state)
    [[ "$state" != "$last" && -n "$state" ]] && say "$NAME: $state"
    last=$state
    case "$(classify "$state")" in
      ready) return 0 ;;
      preempted) return 10 ;;
      failed) die 4 "$KIND $NAME is FAILED (capacity not found before --valid-until-duration $VALID_UNTIL, or the request was refused): see gcloud compute tpus queued-resources describe $NAME --zone $ZONE" ;;
      gone) die 4 "$KIND $NAME is $state: it was deleted or stopped outside this script" ;;
      unknown) fails=$((fails + 1)); [[ $fails -gt 10 ]] && die 4 "cannot read the state of $NAME" ;;
      *) fails=0 ;;
    esac
    [[ $((SECONDS - start)) -ge $WAIT_S ]] && die 4 "$NAME not ready after --wait-timeout $WAIT_TIMEOUT (state $state)"
    pause
  done
}

# ---- the workers ---------------------------------------------------------------------------
ssh_cmd() {  # ssh_cmd WORKER COMMAND
  CMD=("${GC[@]}" compute tpus tpu-vm ssh "$NAME" --zone "$ZONE" "--worker=$1" --command "$2")
}
ssh_run() {  # ssh_run WORKER COMMAND: print or run, retrying a refused connection (fresh VM)
  ssh_cmd "$1" "$2"
  if [[ $DRY -eq 1 ]]; then show "${CMD[@]}"; return 0; fi
  local try rc
  for try in 1 2 3; do
    "${CMD[@]}"; rc=$?
    [[ $rc -ne 255 ]] && return $rc
    say "ssh to $NAME refused (try $try of 3)"; pause
  done
  return $rc
}

pack() {  # tracked and untracked-but-not-ignored files of this checkout, nothing else
  TARBALL="$TMPD/jaxssl-src.tar.gz"
  if [[ $DRY -eq 1 ]]; then
    echo "git -C $(q "$REPO") ls-files -z --cached --others --exclude-standard | tar --null -T - -czf $(q "$TARBALL")"
    return 0
  fi
  if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [[ -f "$f" || -L "$f" ]] && printf '%s\0' "$f"; done |
      tar --null -T - -czf "$TARBALL")
  else
    tar -czf "$TARBALL" -C "$REPO" --exclude-vcs --exclude=.venv --exclude=runs \
      --exclude='*.egg-info' --exclude=__pycache__ .
  fi
}

INSTALL='set -e; mkdir -p ~/jaxssl; tar -xzf ~/jaxssl-src.tar.gz -C ~/jaxssl; '\
'curl -LsSf https://astral.sh/uv/install.sh | env UV_UNMANAGED_INSTALL="$HOME/.local/bin" sh; '\
'~/.local/bin/uv venv --python 3.11 --allow-existing ~/jaxssl/.venv; '\
'~/.local/bin/uv pip install --python ~/jaxssl/.venv/bin/python -e ~/jaxssl "jax[tpu]"'

install() {
  pack || die 4 "could not pack $REPO"
  run "${GC[@]}" compute tpus tpu-vm scp "$TARBALL" "$NAME:jaxssl-src.tar.gz" --zone "$ZONE" \
    --worker=all || die 4 "could not copy the checkout to $NAME"
  ssh_run all "$INSTALL" || die 4 "installing Python 3.11 (uv), jaxssl and jax[tpu] on $NAME failed (see above)"
}

# Whether the run's wrapper process on this worker still lives (a zombie does not count).
ALIVE='p=$(cat ~/jaxssl-run.wpid 2>/dev/null); [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -qs "^State:.*Z" /proc/$p/status'

start_cmd() {  # detached: survives the ssh session; log, python pid and exit code in ~
  local py=(.venv/bin/python -m jaxssl.main "--config=$CONFIG" "--workdir=$WORKDIR" "${EXTRA[@]}")
  local a args="" aside=""
  for a in "${py[@]}"; do args+=" $(qq "$a")"; done
  local wrapper="\"\$@\" >> $LOG 2>&1 & echo \$! > ~/jaxssl-run.pid; wait \$!; "
  wrapper+="echo \$? > ~/jaxssl-run.exit.tmp; mv -f ~/jaxssl-run.exit.tmp ~/jaxssl-run.exit"
  [[ "$WORKDIR" != gs://* ]] && aside="mv -f $(qq "$MARKER") $(qq "$MARKER.prev") 2>/dev/null; "
  START="cd ~/jaxssl && if $ALIVE; "
  START+="then echo \"jaxssl is already running on \$(hostname)\"; else rm -f ~/jaxssl-run.exit; "
  START+="${aside}setsid nohup bash -c $(qq "$wrapper") jaxssl-run$args > /dev/null 2>&1 < /dev/null & "
  START+="echo \$! > ~/jaxssl-run.wpid; fi"
}

marker_aside() {  # a marker left by an earlier run in this workdir must not count as this one's
  [[ "$WORKDIR" == gs://* ]] || return 0  # local: the start command moves it
  if [[ $DRY -eq 1 ]]; then
    echo "# if $(show "${GC[@]}" storage ls "$MARKER") finds it:"
    show "${GC[@]}" storage mv "$MARKER" "$MARKER.prev"
    return 0
  fi
  if "${GC[@]}" storage ls "$MARKER" >/dev/null 2>&1; then
    "${GC[@]}" storage mv "$MARKER" "$MARKER.prev" || die 4 "could not move the old $MARKER aside"
  fi
}

start() {
  start_cmd
  marker_aside
  STARTED=1  # from here on some workers may run: a hangup leaves them, Ctrl-C stops them
  ssh_run all "$START" || die 4 "could not start jaxssl on $NAME"
}

poll_cmd() {  # header "jaxssl-poll EXIT ALIVE SIZE MARKER" then worker 0's new log bytes
  local off=$1 marker_test="m=0"
  [[ "$WORKDIR" != gs://* ]] && marker_test="m=0; [ -f ~/jaxssl/$(qq "$MARKER") ] && m=1"
  [[ "$WORKDIR" == /* ]] && marker_test="m=0; [ -f $(qq "$MARKER") ] && m=1"
  POLL="a=0; $ALIVE && a=1; "
  POLL+="e=\$(cat ~/jaxssl-run.exit 2>/dev/null || echo -); $marker_test; "
  POLL+="s=\$(stat -c %s $LOG 2>/dev/null || echo 0); echo \"jaxssl-poll \$e \$a \$s \$m\"; "
  POLL+="if [ \"\$s\" -gt $off ]; then tail -c +$((off + 1)) $LOG | head -c \$((s - $off)); fi; true"
}

finished_marker() {  # 0 when this run's completion marker exists
  if [[ "$WORKDIR" == gs://* ]]; then
    "${GC[@]}" storage ls "$MARKER" >/dev/null 2>&1
  else
    [[ "$P_MARK" == 1 ]]
  fi
}

OFFSET=0
follow() {  # follows worker 0 until its run ends; sets OUTCOME: done|preempted|restart|exit N
  if [[ $DRY -eq 1 ]]; then
    poll_cmd 0
    state_cmd
    echo "# every ${POLL_S} s: $(show "${CMD[@]}") (PREEMPTED/SUSPENDED: recreate, resume)"
    ssh_cmd 0 "$POLL"
    echo "#   and $(show "${CMD[@]}") (prints new log lines; exit code when the run ends)"
    [[ "$WORKDIR" == gs://* ]] && echo "# exit 0: finished if $(show "${GC[@]}" storage ls "$MARKER") finds it, else stopped after a checkpoint: restart"
    OUTCOME="done"
    return
  fi
  local fails=0 since=$SECONDS state kind out hdr n e a s
  out="$TMPD/poll"
  while :; do
    state=$(read_state)
    kind=$(classify "$state")
    case "$kind" in
      preempted) say "$NAME is $state (preempted)"; OUTCOME=preempted; return ;;
      failed) say "$NAME is $state"; OUTCOME=preempted; return ;;
      gone) die 4 "$KIND $NAME is $state: deleted or stopped outside this script" ;;
      unknown)
        fails=$((fails + 1))
        [[ $fails -gt 10 ]] && die 4 "cannot read the state of $NAME ($fails tries)"
        pause; continue ;;
      wait)
        [[ $((SECONDS - since)) -ge $WAIT_S ]] && die 4 "$NAME stuck in $state for --wait-timeout $WAIT_TIMEOUT"
        pause; continue ;;
    esac
    since=$SECONDS
    poll_cmd "$OFFSET"
    ssh_cmd 0 "$POLL"
    if ! "${CMD[@]}" >"$out" 2>"$out.err" || ! hdr=$(grep -a -m1 -n '^jaxssl-poll ' "$out"); then
      fails=$((fails + 1))
      [[ $fails -gt 10 ]] && die 4 "cannot reach worker 0 of $NAME ($fails tries): $(tail -n 3 "$out.err")"
      pause; continue
    fi
    fails=0
    n=${hdr%%:*}
    read -r _ e a s P_MARK <<<"${hdr#*:}"
    tail -n +$((n + 1)) "$out"
    [[ "$s" =~ ^[0-9]+$ ]] && [[ $s -ge $OFFSET ]] && OFFSET=$s
    if [[ "$e" != "-" ]]; then
      case "$e" in
        0) if finished_marker; then OUTCOME="done"
           else say "the run stopped after a checkpoint without finishing (SIGTERM)"; OUTCOME=restart; fi ;;
        1|2|3) OUTCOME="exit $e" ;;
        *) case "$(classify "$(read_state)")" in
             preempted|failed) OUTCOME=preempted ;;
             *) OUTCOME="exit $e" ;;
           esac ;;
      esac
      return
    fi
    if [[ "$a" == 0 ]]; then
      say "jaxssl is no longer running on worker 0 and left no exit code (the VM restarted?)"
      OUTCOME=restart; return
    fi
    pause
  done
}

stop_workers() {  # SIGTERM: jaxssl checkpoints and exits 0; wait for that, bounded
  say "stopping the workers (SIGTERM: jaxssl writes a checkpoint; Ctrl-C again to skip)"
  ssh_cmd all 'kill -TERM "$(cat ~/jaxssl-run.pid 2>/dev/null)" 2>/dev/null; true'
  "${CMD[@]}" >/dev/null 2>&1
  local start=$SECONDS step=$POLL_S
  [[ "${step%.*}" -gt 5 ]] 2>/dev/null && step=5
  ssh_cmd 0 "if [ -f ~/jaxssl-run.exit ] || ! { $ALIVE; }; then echo stopped; fi"
  while [[ $STOP_NOW -eq 0 && $((SECONDS - start)) -lt $STOP_S ]]; do
    if [[ -n "$("${CMD[@]}" 2>/dev/null)" ]]; then say "workers stopped"; return 0; fi
    sleep "$step"
  done
  say "workers did not stop within ${STOP_S} s"
}

# ---- results -------------------------------------------------------------------------------
copy_results() {
  [[ -z "$RESULTS" ]] && return 0
  if [[ "$WORKDIR" == gs://* ]]; then
    # Everything but checkpoints; missing plots/ or *.jsonl are simply not there to copy.
    if ! { run mkdir -p "$RESULTS" &&
           run "${GC[@]}" storage rsync --recursive \
             '--exclude=(^|.*/)checkpoints(_unreadable)?/.*' "$WORKDIR" "$RESULTS"; }; then
      die 4 "the run finished but copying $WORKDIR to $RESULTS failed; it is all in $WORKDIR"
    fi
  else
    local remote=$WORKDIR
    [[ "$remote" != /* ]] && remote="jaxssl/$remote"
    if ! { run "${GC[@]}" compute tpus tpu-vm scp --recurse "$NAME:$remote" "$TMPD/results" \
             --zone "$ZONE" --worker=0 &&
           run mkdir -p "$RESULTS" && run cp -a "$TMPD/results/." "$RESULTS/"; }; then
      KEEP=1  # the only copy is on the VM: do not delete it
      die 4 "the run finished but copying $NAME:$remote failed; $NAME is kept so nothing is lost"
    fi
  fi
}

# ---- exit paths ----------------------------------------------------------------------------
cleanup() {
  local rc=$?
  trap '' INT TERM HUP  # nothing interrupts the clean-up
  if [[ $DRY -eq 0 && $OWNED -eq 1 ]]; then
    delete_cmd
    local del
    del=$(show "${CMD[@]}")
    if [[ $DETACHED -eq 1 ]]; then
      say "$NAME keeps training; follow it again: launch/tpu_vm.sh --attach $NAME; delete it: $del"
    elif [[ $KEEP -eq 1 ]]; then
      say "kept $KIND $NAME (--keep); delete it with: $del"
    elif delete_resource; then
      rm -f "$STATE_DIR/$NAME.args"
    elif state_cmd && ! "${CMD[@]}" >/dev/null 2>&1; then
      say "$KIND $NAME does not exist (nothing to delete)"
      rm -f "$STATE_DIR/$NAME.args"
    else
      say "could not delete $KIND $NAME: delete it yourself, it is billed while it exists: $del"
      [[ $rc -eq 0 ]] && rc=4
    fi
  fi
  [[ -n "$TMPD" ]] && rm -rf "$TMPD"
  exit "$rc"
}
on_signal() {  # Ctrl-C / SIGTERM: let the workers checkpoint, then the exit trap deletes
  trap 'STOP_NOW=1' INT TERM
  say "interrupted by SIG$1"
  [[ $STARTED -eq 1 && $DRY -eq 0 ]] && stop_workers
  exit "$2"
}
on_hup() {  # the terminal closed: running workers keep training, the VM stays
  if [[ $STARTED -eq 1 ]]; then DETACHED=1; exit 129; fi
  on_signal HUP 129
}

if [[ $DRY -eq 1 ]]; then
  TMPD="${TMPDIR:-/tmp}/jaxssl-launch.XXXXXX"
  echo "# runtime $RUNTIME for $ACCEL; Python 3.11 through uv on every worker"
else
  TMPD=$(mktemp -d "${TMPDIR:-/tmp}/jaxssl-launch.XXXXXX") || die 4 "mktemp failed"
  if [[ -z "$ATTACH" ]]; then  # what --attach NAME reads back
    mkdir -p "$STATE_DIR" && printf '%q ' "${ORIG_ARGS[@]}" >"$STATE_DIR/$NAME.args"
  fi
fi
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap on_hup HUP

# ---- main ----------------------------------------------------------------------------------
attempt=0
need_create=1 need_install=1
if [[ -n "$ATTACH" ]]; then
  OWNED=1 STARTED=1 need_create=0 need_install=0
  state=$(read_state)
  case "$(classify "$state")" in
    ready|wait) say "attached to $NAME ($state); worker 0's log from its start:" ;;
    preempted|failed) say "$NAME is $state: recreating it"; need_create=2 need_install=1 STARTED=0 ;;
    *) OWNED=0; die 4 "$KIND $NAME is ${state:-not found}: nothing to attach to" ;;
  esac
fi
while :; do
  if [[ $need_create -ne 0 ]]; then
    if [[ $need_create -eq 2 ]]; then delete_resource || die 4 "could not delete $NAME to recreate it"; fi
    create; rc=$?
    if [[ $rc -eq 10 ]]; then
      OUTCOME=preempted
    else
      OFFSET=0
      [[ $need_install -ne 0 ]] && install
      start
      [[ $DRY -eq 0 ]] && say "jaxssl runs detached on every worker (log ~/jaxssl-run.log); following worker 0; after closing this terminal: launch/tpu_vm.sh --attach $NAME"
      follow
    fi
  elif [[ $STARTED -eq 0 ]]; then
    start; follow
  else
    follow
  fi
  case "$OUTCOME" in
    done) break ;;
    "exit 1") die 1 "the run stopped on a non-finite loss (exit 1): nothing recreated; see the log above" ;;
    "exit 2") die 2 "config error (exit 2): nothing recreated; see the log above" ;;
    "exit 3") die 3 "the workdir $WORKDIR is locked by a live run (exit 3): nothing recreated" ;;
    "exit "*) die "${OUTCOME#exit }" "the run crashed (exit ${OUTCOME#exit }): nothing recreated; see the log above" ;;
  esac
  attempt=$((attempt + 1))
  if [[ $attempt -gt $RETRIES ]]; then
    die 4 "interrupted $attempt times, more than --retries $RETRIES: giving up; the checkpoint in $WORKDIR is kept (run the same command to go on)"
  fi
  if [[ "$OUTCOME" == preempted ]]; then
    say "preempted: recreating $NAME and resuming from $WORKDIR (retry $attempt of $RETRIES)"
    need_create=2 need_install=1 STARTED=0
  else
    say "restarting jaxssl on $NAME, resuming from $WORKDIR (retry $attempt of $RETRIES)"
    need_create=0 STARTED=0
  fi
done

copy_results
[[ $DRY -eq 1 ]] && { delete_cmd; [[ $KEEP -eq 0 ]] && show "${CMD[@]}"; }
say "finished: $MARKER"
exit 0
