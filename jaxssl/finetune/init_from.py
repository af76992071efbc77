"""Loading an encoder from a run's workdir: the latest orbax checkpoint's params subtree.

Every check reads only checkpoint metadata and the fresh encoder's jax.eval_shape, so a missing
workdir, a run without checkpoints or a different model is a ConfigError before compiling.
"""

import json
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util
from jax.sharding import Mesh

from jaxssl.config import ConfigError
from jaxssl.train import mesh as mesh_lib


def latest_checkpoint(workdir: str) -> epath.Path:
    """workdir/checkpoints/<latest step>/state, or a ConfigError saying what is missing."""
    root = epath.Path(workdir)
    if not root.is_dir():
        raise ConfigError(
            f"init_from={workdir!r} is not a directory: pass the --workdir of a finished "
            "pre-training run, e.g. --config.init_from=runs/simclr_digits"
        )
    ckpt_dir = root / "checkpoints"
    # Orbax writes <step>.orbax-checkpoint-tmp-* first; only finalised integer dirs count.
    steps = (
        [int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit() and (p / "state").is_dir()]
        if ckpt_dir.is_dir()
        else []
    )
    if not steps:
        raise ConfigError(
            f"init_from={workdir!r} has no checkpoint under {ckpt_dir}: the run has not "
            "saved one yet (see its checkpoint_every) or this is not a jaxssl workdir"
        )
    return ckpt_dir / str(max(steps)) / "state"


def run_config(workdir: str) -> dict[str, Any]:
    """The config.json a run wrote into its workdir ({} if absent)."""
    path = epath.Path(workdir) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    flat = traverse_util.flatten_dict(tree)
    return {"/".join(k): tuple(v.shape) for k, v in flat.items()}


def check_compatible(state_dir: epath.Path, expected: dict[str, Any], source_model: Any) -> None:
    """ConfigError unless the checkpoint holds every expected {subtree: abstract tree}.

    expected maps a dotted subtree of the saved state ("params.encoder",
    "model_state.batch_stats.encoder") to the abstract tree the fine-tune model needs.
    """
    meta = ocp.PyTreeCheckpointHandler().metadata(state_dir)
    meta = getattr(meta, "tree", meta)  # the nested dict of per-array metadata
    for dotted, want_tree in expected.items():
        node = meta
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(
                    f"checkpoint {state_dir} has no `{dotted}`: it was not written by a jaxssl "
                    "run with this encoder (init_from must be a pre-training or fine-tune workdir)"
                )
            node = node[part]
        want, got = _shapes(want_tree), _shapes(node)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        wrong = [(k, got[k], want[k]) for k in sorted(set(want) & set(got)) if got[k] != want[k]]
        if missing or extra or wrong:
            details = "; ".join(
                [f"missing {missing[:3]}"] * bool(missing)
                + [f"unexpected {extra[:3]}"] * bool(extra)
                + [f"{k}: checkpoint {g} vs config {w}" for k, g, w in wrong[:3]]
            )
            raise ConfigError(
                f"init_from checkpoint {state_dir} does not fit config.model ({details}): set "
                f"the model block to the one the run used: {source_model}"
            )


def restore(state_dir: epath.Path, expected: dict[str, Any], mesh: Mesh) -> dict[str, Any]:
    """{dotted subtree: arrays} read from the checkpoint, replicated on the mesh."""
    target: dict[str, Any] = {}
    for dotted, tree in expected.items():
        node = target
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)
    sharding = mesh_lib.replicated(mesh)
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=sharding), target)
    restored = ocp.PyTreeCheckpointer().restore(
        state_dir,
        args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True),
    )
    out = {}
    for dotted in expected:
        node = restored
        for part in dotted.split("."):
            node = node[part]
        out[dotted] = node
    return out
