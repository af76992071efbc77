"""Orbax checkpoints of the train state and the grain data iterator, kept together."""

from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath


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

    def wait(self) -> None:
        """Blocks until async saves are on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self.manager.close()
