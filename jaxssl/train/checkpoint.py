"""Orbax checkpoints of the train state and the grain data iterator, kept together."""

import sys
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

QUARANTINE = "checkpoints_unreadable"


def _abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings of tree: tells orbax where each restored leaf goes."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


class Checkpointer:
    """Saves {state, data} every so often, keeping the newest `keep` steps."""

    def __init__(self, directory: epath.PathLike, keep: int = 3, async_save: bool = True):
        self.directory = epath.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save
            ),
            item_names=("state", "data"),
        )

    def latest_step(self) -> int | None:
        """Newest complete checkpoint step, or None for a fresh workdir."""
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """Every complete checkpoint step, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: Any, force: bool = False) -> bool:
        """Starts saving state and the iterator position at step (async when enabled)."""
        return self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
            ),
            force=force,
        )

    def restore(self, step: int, like_state: Any, data_iterator: Any | None) -> Any:
        """Restores state (placed like `like_state`) and, if given, the iterator, in place."""
        items = {"state": ocp.args.StandardRestore(_abstract(like_state))}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored["state"]

    def restore_latest(self, like_state: Any, data_iterator: Any | None) -> tuple[Any, int | None]:
        """Newest checkpoint that restores; unreadable newer ones are reported and set aside.

        Returns (state, step), or (like_state, None) when no checkpoint can be read. A step
        that fails (truncated file, missing item) is moved to ../checkpoints_unreadable/ so
        later saves can reuse its step number; nothing is deleted.
        """
        for step in reversed(self.all_steps()):
            try:
                return self.restore(step, like_state, data_iterator), step
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                self._set_aside(step, e)
        return like_state, None

    def _set_aside(self, step: int, error: Exception) -> None:
        src = self.directory / str(step)
        dst = self.directory.parent / QUARANTINE / f"{step}"
        if jax.process_index() == 0:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            print(
                f"jaxssl: checkpoint step {step} in {self.directory} is unreadable "
                f"({type(error).__name__}: {reason}); moved to {dst}, trying an older one",
                file=sys.stderr,
                flush=True,
            )
            dst.parent.mkdir(parents=True, exist_ok=True)
            n = 1
            while dst.exists():  # a step number can go bad twice: keep both copies
                dst, n = dst.parent / f"{step}.{n}", n + 1
            src.rename(dst)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"jaxssl_set_aside_{step}")
        self.manager.reload()

    def wait(self) -> None:
        """Blocks until async saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.close()
