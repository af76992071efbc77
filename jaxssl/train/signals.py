"""Preemption: SIGTERM/SIGINT ask the loop to finish its step, checkpoint and exit cleanly."""

import signal
import threading
import types

import jax
from jax.experimental import multihost_utils


class Preempted(Exception):  # noqa: N818 - a stop request, not an error
    """Raised by the loop after the checkpoint at `step` is on disk; the job exits 0."""

    def __init__(self, step: int, signal_name: str, checkpoint_dir: str):
        self.step, self.signal_name, self.checkpoint_dir = step, signal_name, checkpoint_dir
        super().__init__(
            f"stopped by {signal_name} after step {step}; checkpoint saved in {checkpoint_dir}"
        )


class PreemptionGuard:
    """Records SIGTERM/SIGINT instead of dying; `should_stop(step)` is checked once per step.

    One process: Python handlers set a flag (a second SIGINT interrupts at once).
    Several processes: jax.distributed's preemption sync manager (it catches SIGTERM in
    the runtime) tells every process to stop at the same step, so their checkpoints agree;
    SIGINT stays a plain KeyboardInterrupt there.
    """

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}
        self._depth = 0  # re-entered by train_loop inside pretrain.run: install once

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        del frame
        if self.signal_name == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the user does not want to wait
        self.signal_name = signal.Signals(signum).name
        print(f"jaxssl: got {self.signal_name}: finishing the step, then checkpointing", flush=True)

    def __enter__(self) -> "PreemptionGuard":
        self._depth += 1
        # Handlers can only be installed from the main thread (tests may run loops elsewhere).
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            # Several processes: the distributed runtime's SIGTERM notifier decides, and
            # Ctrl-C keeps its usual meaning (a flag on one process could not be agreed on).
            for sig in self._SIGNALS if jax.process_count() == 1 else ():
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def should_stop(self, step: int) -> bool:
        """True once a stop was requested (agreed by all processes when there are several)."""
        if jax.process_count() > 1:
            # Host-side check of the coordination service; the same answer on every process.
            if multihost_utils.reached_preemption_sync_point(step):
                self.signal_name = self.signal_name or "SIGTERM"
                return True
            return False
        return self.signal_name is not None
