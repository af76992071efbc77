"""The one checkpoint module: orbax saves of {train state, grain iterator}, and every read.

Resume (Checkpointer.restore_latest), init_from, predict / embed, generate and export all read
through here: paths may be relative, absolute, `~` or gs://; a job restores only the subtrees
it needs (e.g. params.encoder without the optimizer state), placed with the target shardings.
`RunCheckpoint(path)` of a public checkpoint (a Hugging Face folder, a torchvision / timm ResNet
state dict: detected from the files) is a ForeignCheckpoint with the same interface, converted
by jaxssl/interop.
"""

import os
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util
from jax.experimental import multihost_utils

from jaxssl import interop
from jaxssl.config import ConfigError
from jaxssl.data import pipeline

QUARANTINE = "checkpoints_unreadable"
ITEMS = ("state", "data")


def resolve(path: epath.PathLike) -> epath.Path:
    """An absolute path (orbax refuses relative ones); `~` expanded, gs:// kept as it is."""
    text = os.fspath(path)
    if "://" in text:
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def _abstract(tree: Any) -> Any:
    """Shapes, dtypes and shardings of tree: tells orbax where each restored leaf goes."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


class Checkpointer:
    """Saves {state, data} every so often, keeping the newest `keep` steps."""

    def __init__(
        self,
        directory: epath.PathLike,
        keep: int = 3,
        async_save: bool = True,
        read_only: bool = False,
    ):
        self.directory = resolve(directory)
        self.read_only = read_only
        if read_only:  # reads subtrees and metadata of "state" only: a PyTree handler does both
            names = {"item_handlers": {"state": ocp.PyTreeCheckpointHandler()}}
            options = ocp.CheckpointManagerOptions(create=False, read_only=True)
        else:
            names = {"item_names": ITEMS}
            options = ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=async_save
            )
        self.manager = ocp.CheckpointManager(self.directory, options=options, **names)

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
                data=pipeline.iterator_save_arg(data_iterator),
            ),
            force=force,
        )

    def restore(self, step: int, like_state: Any, data_iterator: Any | None) -> Any:
        """Restores state (placed like `like_state`) and, if given, the iterator, in place."""
        items = {"state": ocp.args.StandardRestore(_abstract(like_state))}
        if data_iterator is not None:
            items["data"] = pipeline.iterator_restore_arg(data_iterator)
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

    def saved_tree(self, step: int) -> dict[str, Any]:
        """The nested {name: array metadata (shape, dtype)} of the state saved at step."""
        meta = self.manager.item_metadata(step)
        meta = meta["state"] if "state" in meta else meta
        return getattr(meta, "tree", meta)

    def restore_subtrees(self, step: int, wanted: dict[str, Any]) -> dict[str, Any]:
        """{dotted subtree of the saved state: arrays}, each placed like wanted[dotted].

        wanted maps "params.encoder", "model_state.batch_stats.encoder" ... to trees of
        arrays or ShapeDtypeStructs carrying the target shardings; nothing else is read.
        """
        target: dict[str, Any] = {}
        for dotted, tree in wanted.items():
            node = target
            parts = dotted.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = _abstract(tree)
        restore_args = jax.tree.map(lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding), target)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item=target, restore_args=restore_args, partial_restore=True
                )
            ),
        )["state"]
        return {dotted: _get(restored, dotted) for dotted in wanted}

    def _set_aside(self, step: int, error: Exception) -> None:
        src = self.directory / str(step)
        dst = self.directory.parent / QUARANTINE / f"{step}"
        if jax.process_index() == 0:
            print(
                f"jaxssl: checkpoint step {step} in {self.directory} is unreadable "
                f"({type(error).__name__}: {_first_line(error)}); moved to {dst}, trying an "
                "older one",
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


def _get(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def has_checkpoint(workdir: epath.PathLike) -> bool:
    """Whether workdir/checkpoints holds a finalised step (orbax's tmp folders do not count)."""
    ckpts = resolve(workdir) / "checkpoints"
    return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())


class RunCheckpoint:
    """Read-only access to another run's newest checkpoint (init_from, predict, generate ...).

    Construction checks only metadata, so a missing workdir, a run without checkpoints or a
    model that does not fit is a ConfigError before anything compiles. Nothing in the other
    run's workdir is moved or written.
    """

    def __new__(cls, workdir: epath.PathLike, key: str = "init_from"):
        """A ForeignCheckpoint when workdir is a public checkpoint, else a jaxssl run."""
        del key
        if cls is RunCheckpoint and interop.detect(os.fspath(workdir)) is not None:
            return super().__new__(ForeignCheckpoint)
        return super().__new__(cls)

    def __init__(self, workdir: epath.PathLike, key: str = "init_from"):
        self.workdir, self.key = resolve(workdir), key
        if not self.workdir.is_dir():
            raise ConfigError(
                f"{key}={os.fspath(workdir)!r} is not a directory: pass the --workdir of a "
                "finished jaxssl run, e.g. --config.init_from=runs/simclr_digits, or a public "
                "checkpoint (a Hugging Face folder, a ResNet .safetensors / .pth file)"
            )
        if not has_checkpoint(self.workdir):
            raise ConfigError(
                f"{key}={os.fspath(workdir)!r} has no checkpoint under "
                f"{self.workdir / 'checkpoints'}: the run has not saved one yet (see its "
                "checkpoint_every) or this is not a jaxssl workdir"
            )
        self.ckpt = Checkpointer(self.workdir / "checkpoints", read_only=True, async_save=False)
        steps = self.ckpt.all_steps()
        if not steps:
            raise ConfigError(f"{key}={os.fspath(workdir)!r}: no complete checkpoint step")
        self.step = steps[-1]

    def config(self) -> dict[str, Any]:
        """The config.json the run wrote into its workdir ({} if absent)."""
        import json

        path = self.workdir / "config.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def shapes(self, dotted: str) -> dict[str, tuple[int, ...]] | None:
        """{"a/b/kernel": shape} of a saved subtree, or None when the run has no such subtree."""
        node: Any = self.ckpt.saved_tree(self.step)
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        flat = traverse_util.flatten_dict(node) if isinstance(node, dict) else {(): node}
        return {"/".join(k): tuple(v.shape) for k, v in flat.items()}

    def check_fits(self, wanted: dict[str, Any], model: Any = None) -> None:
        """ConfigError unless every wanted {dotted: tree} is saved with the same shapes.

        model (the job's config.model) is used by public checkpoints only (ForeignCheckpoint).
        """
        del model
        for dotted, tree in wanted.items():
            got = self.shapes(dotted)
            if got is None:
                raise ConfigError(
                    f"{self.key}: the checkpoint in {self.workdir} has no `{dotted}`: it was not "
                    "written by a jaxssl run with this kind of model"
                )
            flat = traverse_util.flatten_dict(tree) if isinstance(tree, dict) else {(): tree}
            want = {"/".join(k): tuple(v.shape) for k, v in flat.items()}
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            wrong = [
                (k, got[k], want[k]) for k in sorted(set(want) & set(got)) if got[k] != want[k]
            ]
            if missing or extra or wrong:
                details = "; ".join(
                    [f"missing {missing[:3]}"] * bool(missing)
                    + [f"unexpected {extra[:3]}"] * bool(extra)
                    + [f"{k}: checkpoint {g} vs config {w}" for k, g, w in wrong[:3]]
                )
                raise ConfigError(
                    f"{self.key} checkpoint {self.workdir} does not fit config.model ({details}):"
                    f" set the model block to the one the run used: {self.config().get('model')}"
                )

    def restore(self, wanted: dict[str, Any], model: Any = None) -> dict[str, Any]:
        """The wanted subtrees of the newest readable step (older ones if it is damaged),
        after check_fits(wanted, model)."""
        self.check_fits(wanted, model)
        errors = []
        for step in reversed(self.ckpt.all_steps()):
            try:
                out = self.ckpt.restore_subtrees(step, wanted)
            except Exception as e:  # a damaged step: report it and read the one before
                errors.append(f"step {step}: {type(e).__name__}: {_first_line(e)}")
                continue
            if jax.process_index() == 0:
                skipped = f" (unreadable: {'; '.join(errors)})" if errors else ""
                print(
                    f"jaxssl: loaded {', '.join(wanted)} from {self.workdir} step {step}{skipped}",
                    flush=True,
                )
            return out
        raise ConfigError(
            f"{self.key}: no checkpoint of {self.workdir} can be read: {'; '.join(errors)}"
        )

    def close(self) -> None:
        """Releases the manager."""
        self.ckpt.close()


class ForeignCheckpoint(RunCheckpoint):
    """A public checkpoint read like a run: a Hugging Face folder (BERT, GPT-2, ViT, ViT-MAE) or
    a torchvision / timm ResNet state dict, converted by jaxssl/interop.

    config() is {"job": "pretrain", "model": the block built from the checkpoint's own config,
    "augment": its eval preprocessing}; jobs that take the model from the run (predict, embed,
    generate, export) use that block, jobs with their own model (pretrain, finetune) must match
    it (check_fits names the flags). Weights are read once, at construction.
    """

    def __init__(self, workdir: epath.PathLike, key: str = "init_from"):
        self.workdir, self.key, self.step = resolve(workdir), key, 0
        self.foreign = interop.load(os.fspath(self.workdir))

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": "pretrain", "model": dict(self.foreign.model)}
        augment = interop.preprocessing(self.foreign)
        if augment is not None:
            out["augment"] = augment
        return out

    def shapes(self, dotted: str) -> dict[str, tuple[int, ...]] | None:
        tree = self.foreign.subtrees().get(dotted)
        if tree is None:
            return None
        return {"/".join(k): tuple(v.shape) for k, v in traverse_util.flatten_dict(tree).items()}

    def check_fits(self, wanted: dict[str, Any], model: Any = None) -> None:
        """Shapes and structure against the converted checkpoint; with model (the job's
        config.model) also the options the weights cannot show (interop.check_options)."""
        if model is not None:
            interop.check_options(self.foreign, model, self.key)
        interop.fit(self.foreign, wanted, self.key)

    def restore(self, wanted: dict[str, Any], model: Any = None) -> dict[str, Any]:
        if model is not None:  # check_fits' other half; fit below converts only once
            interop.check_options(self.foreign, model, self.key)
        out = interop.place(interop.fit(self.foreign, wanted, self.key), wanted)
        if jax.process_index() == 0:
            print(
                f"jaxssl: loaded {', '.join(wanted)} from {self.workdir}: "
                f"{self.foreign.describe()}",
                flush=True,
            )
        return out

    def close(self) -> None:
        """Nothing to release."""


def encoder_subtrees(params: Any, model_state: Any) -> dict[str, Any]:
    """{dotted path in a saved TrainState: subtree} of an encoder's params and statistics."""
    out = {"params.encoder": params["encoder"]}
    for collection, tree in model_state.items():
        if isinstance(tree, dict) and "encoder" in tree:
            out[f"model_state.{collection}.encoder"] = tree["encoder"]
    return out


def load_encoder(state: Any, workdir: epath.PathLike, model: Any = None) -> Any:
    """state with its encoder params and statistics replaced by another run's, same shardings.

    workdir may also be a public checkpoint (Hugging Face folder, ResNet state dict): its
    converted encoder is loaded the same way; given model (the job's config.model), the
    options its weights cannot show are checked too.
    """
    run = RunCheckpoint(workdir)
    try:
        loaded = run.restore(encoder_subtrees(state.params, state.model_state), model)
    finally:
        run.close()
    params = {**state.params, "encoder": loaded["params.encoder"]}
    model_state = {
        c: (
            {**t, "encoder": loaded[f"model_state.{c}.encoder"]}
            if f"model_state.{c}.encoder" in loaded
            else t
        )
        for c, t in state.model_state.items()
    }
    return state.replace(params=params, model_state=model_state)
