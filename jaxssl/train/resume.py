"""Is this workdir's checkpoint ours? Refuse a conflicting config; fresh_start runs beside it."""

import json
from typing import Any

import jax
import ml_collections
from etils import epath

from jaxssl import methods
from jaxssl.config import ConfigError, base_config
from jaxssl.train import checkpoint

# Keys whose change makes a checkpoint unusable: param shapes, objective, optimizer state,
# and for fine-tuning the state's structure (mode, LoRA rank, adapters, head, partitions).
# dataset.num_workers: the saved data position is one per worker (grain's mp_prefetch state).
CONFLICT_PREFIXES = (
    "model.",
    "method.",
    "optimizer.name",
    "dataset.name",
    "dataset.num_workers",
    "finetune.",
    "job",
)
# Compute-only switches: changing them keeps the checkpoint valid.
COMPATIBLE_KEYS = (
    "model.dtype",
    "model.remat",
    "finetune.label_smoothing",
    "finetune.l1",
    "finetune.l2",
    "finetune.train_augment",
)
FRESH_PREFIX = "fresh-"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def _with_defaults(config: dict) -> dict[str, Any]:
    """Flat keys of a config dict, plus the keys it leaves out at their defaults (base_config,
    the method's OPTIONS): a run saved before a key existed, or before its config declared
    it, ran with that value (a key added later defaults to the behaviour before it)."""
    name = config.get("method", {}).get("name", "")
    defaults = base_config().to_dict() | {"method": methods.option_defaults(name)}
    return _flatten(defaults) | _flatten(config)


def conflicting_keys(saved: dict, current: dict) -> list[str]:
    """Dotted keys under CONFLICT_PREFIXES whose values differ between two config dicts."""
    a, b = _with_defaults(saved), _with_defaults(current)
    keys = sorted(set(a) | set(b))
    return [
        k
        for k in keys
        if any(k == p or k.startswith(p) for p in CONFLICT_PREFIXES)
        and k not in COMPATIBLE_KEYS
        and a.get(k, "<missing>") != b.get(k, "<missing>")
    ]


def _conflicts(workdir: epath.Path, current: dict) -> list[str] | None:
    """None: nothing to resume; []: resumable; else the differing keys."""
    if not checkpoint.has_checkpoint(workdir):
        return None
    path = workdir / "config.json"
    if not path.exists():
        return []  # a checkpoint without config.json (older jaxssl): restore checks shapes
    return conflicting_keys(json.loads(path.read_text()), current)


def resolve_workdir(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> epath.Path:
    """The folder this run uses: workdir itself, or with fresh_start a workdir/fresh-N.

    Raises ConfigError naming the differing keys when workdir's checkpoint came from an
    incompatible config and fresh_start is off. With fresh_start the newest fresh-N whose
    checkpoint matches is resumed (so a preempted fresh run resumes with the same command),
    else a new fresh-N is used; nothing already on disk is touched.
    """
    workdir = checkpoint.resolve(workdir)
    current = json.loads(json.dumps(config.to_dict()))  # tuples -> lists, as in config.json
    conflicts = _conflicts(workdir, current)
    if not conflicts:
        return workdir
    saved = _flatten(json.loads((workdir / "config.json").read_text()))
    now = _flatten(current)
    if not config.get("fresh_start", False):
        diffs = "; ".join(
            f"{k}: checkpoint {saved.get(k, '<missing>')!r} vs now {now.get(k, '<missing>')!r}"
            for k in conflicts
        )
        raise ConfigError(
            f"the checkpoint in {workdir} was made with a different config ({diffs}): use the "
            "original values to resume, another --workdir, or --config.fresh_start=True to "
            f"start over in {workdir}/{FRESH_PREFIX}N (the old run is kept)"
        )
    existing = sorted(
        (
            int(p.name[len(FRESH_PREFIX) :])
            for p in workdir.glob(f"{FRESH_PREFIX}*")
            if p.name[len(FRESH_PREFIX) :].isdigit()
        ),
    )
    chosen = workdir / f"{FRESH_PREFIX}{(existing[-1] if existing else 0) + 1}"
    for n in reversed(existing):
        if not _conflicts(workdir / f"{FRESH_PREFIX}{n}", current):
            chosen = workdir / f"{FRESH_PREFIX}{n}"
            break
    if jax.process_index() == 0:
        print(
            f"jaxssl: fresh_start: {workdir} holds a run with other {', '.join(conflicts)}; "
            f"it is kept, this run uses {chosen}",
            flush=True,
        )
    return chosen
