"""Joining the other processes of a multi-host job before any jax backend starts."""

import ml_collections

MODES = ("auto", "on", "off")


def _explicit(cfg: ml_collections.ConfigDict) -> dict:
    kwargs = {}
    if cfg.get("coordinator_address"):
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.get("num_processes", 0) > 0:
        kwargs["num_processes"] = cfg.num_processes
    if cfg.get("process_id", -1) >= 0:
        kwargs["process_id"] = cfg.process_id
    return kwargs


def initialize(config: ml_collections.ConfigDict) -> bool:
    """Calls jax.distributed.initialize as the `distributed` block says; True if it did.

    "auto": explicit coordinator settings if given; otherwise jax's own detection of Cloud TPU
    VM pods, Slurm, Open MPI and Kubernetes, and a single process when none is found.
    "on": always initialize (fails loudly if nothing is detected). "off": never.
    A bare `distributed=True` (older configs) means "on".
    """
    import jax  # after the caller's flag parsing; no backend is touched here

    cfg = config.get("distributed", None)
    if isinstance(cfg, bool) or cfg is None:
        mode, kwargs = ("on" if cfg else "off"), {}
    else:
        mode, kwargs = cfg.get("enabled", "auto"), _explicit(cfg)
    if mode not in MODES:
        raise ValueError(f"distributed.enabled={mode!r}: use one of {', '.join(MODES)}")
    if mode == "off":
        return False
    if kwargs.get("num_processes", 1) > 1:
        # CPU processes need a cross-process collectives backend (tests, CPU clusters).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if mode == "auto" and "coordinator_address" not in kwargs:
        try:
            jax.distributed.initialize(**kwargs)
        except ValueError as e:  # jax found no cluster: a plain single-process run
            if "coordinator_address" not in str(e):
                raise
            return False
        except RuntimeError as e:
            # jax already runs in this process (the Python API's second run, a notebook):
            # with no coordinator given it stays the single process it is.
            if "before any JAX" not in str(e):
                raise
            return False
        return True
    jax.distributed.initialize(**kwargs)
    return True
