"""A workdir lock: one live run per workdir; a lock left by a dead run is taken over.

Hand-written: filelock/fcntl locks do not say who holds them and vanish on network file
systems; this one records pid and host so the refusal can name the holder, and the Slurm
job id so that a requeued job (Slurm keeps its id) takes its own lock over at once.
"""

import json
import os
import socket
import threading
import time
import uuid

from etils import epath

LOCK_NAME = "jaxssl.lock"
HEARTBEAT_S = 60.0
# A lock from another host is stale when its heartbeat is older than this (that host may be gone).
STALE_AFTER_S = 10 * 60.0


class WorkdirLockedError(RuntimeError):
    """Another live run holds the workdir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _slurm_job_id() -> str | None:
    return os.environ.get("SLURM_JOB_ID") or None


def _slurm_restart_count() -> str:
    return os.environ.get("SLURM_RESTART_COUNT") or "0"  # unset before the first requeue


def _is_stale(holder: dict, now: float) -> bool:
    job = _slurm_job_id()
    same_job = job is not None and str(holder.get("slurm_job_id")) == job
    if same_job and str(holder.get("slurm_restart_count")) != _slurm_restart_count():
        # This Slurm job was requeued (preempted, node failure): Slurm ends every process
        # of a run before it starts the job again, so the holder is gone even though its
        # heartbeat is recent (it may have been SIGKILLed) or its pid was reused.
        return True
    if holder.get("host") == socket.gethostname():
        return not _pid_alive(int(holder.get("pid", -1)))
    # The same job on another host: requeued where Slurm keeps no restart count.
    return same_job or now - float(holder.get("heartbeat", 0.0)) > STALE_AFTER_S


class WorkdirLock:
    """Context manager holding workdir/jaxssl.lock with this process's pid and host."""

    def __init__(self, workdir: epath.PathLike):
        self.path = epath.Path(workdir) / LOCK_NAME
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: dict | None = None

    def _record(self) -> dict:
        now = time.time()
        self._token = uuid.uuid4().hex  # tells this lock apart from another in the same process
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "token": self._token,
            "started": now,
            "heartbeat": now,
            "slurm_job_id": _slurm_job_id(),
            "slurm_restart_count": _slurm_restart_count(),
        }

    def _try_create(self, record: dict) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        return True

    def acquire(self) -> None:
        """Takes the lock or raises WorkdirLockedError naming the live holder."""
        if "://" in str(self.path):
            return  # object stores have no atomic create: one run per bucket path is on you
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = self._record()
        if self._try_create(record):
            self._start_heartbeat(record)
            return
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            holder = {}  # half-written by a process killed while creating it
        if holder and not _is_stale(holder, time.time()):
            job = f", Slurm job {holder['slurm_job_id']}" if holder.get("slurm_job_id") else ""
            raise WorkdirLockedError(
                f"workdir {self.path.parent} is in use by pid {holder.get('pid')} on host "
                f"{holder.get('host')} (lock {self.path}{job}): wait for that run to end, or use "
                "another --workdir; if that process is really gone, delete the lock file"
            )
        # Stale: replace atomically; if two starters race, the last rename wins and the
        # other sees a foreign token when it reads back and refuses.
        tmp = self.path.parent / f".{LOCK_NAME}.{os.getpid()}.{self._token}"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)
        time.sleep(0.05)
        if json.loads(self.path.read_text()).get("token") != self._token:
            raise WorkdirLockedError(f"workdir {self.path.parent} was just taken by another run")
        self.took_over = holder
        what = "a stale lock"
        if holder.get("slurm_job_id") and str(holder.get("slurm_job_id")) == _slurm_job_id():
            what = f"the lock of this requeued Slurm job's ({_slurm_job_id()}) earlier run"
        print(
            f"jaxssl: took over {what} of pid {holder.get('pid')} on host "
            f"{holder.get('host')} ({self.path})",
            flush=True,
        )
        self._start_heartbeat(record)

    def _start_heartbeat(self, record: dict) -> None:
        def beat():
            while not self._stop.wait(HEARTBEAT_S):
                record["heartbeat"] = time.time()
                try:
                    self.path.write_text(json.dumps(record))
                except OSError:
                    pass  # a missed beat only makes the lock look older

        self._thread = threading.Thread(target=beat, daemon=True, name="jaxssl-lock-heartbeat")
        self._thread.start()

    def release(self) -> None:
        """Stops the heartbeat and removes the lock if it is still ours."""
        self._stop.set()
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if holder.get("token") == getattr(self, "_token", None):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "WorkdirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
