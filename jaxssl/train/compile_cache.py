"""The persistent XLA compilation cache: a rerun, a resume or the next config starts in seconds.

On by default in the user's cache folder ($XDG_CACHE_HOME/jaxssl/xla, else ~/.cache/jaxssl/xla);
`compile_cache_dir` in a config moves it (a shared or gs:// folder serves a whole pod) and ""
turns it off. A JAX_COMPILATION_CACHE_DIR set in the environment wins over both.
"""

import os

import jax


def default_dir() -> str:
    """$XDG_CACHE_HOME/jaxssl/xla, or ~/.cache/jaxssl/xla."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxssl", "xla")


def enable(path: str | None) -> str | None:
    """Points jax's persistent cache at path (None: the default; "": off); returns the folder."""
    from_env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if from_env:
        return from_env  # jax read it at import; the environment is the user's explicit choice
    if path == "":
        return None
    path = os.path.expanduser(path or default_dir())
    if "://" not in path:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            return None  # a read-only home: run without the cache rather than fail
    jax.config.update("jax_compilation_cache_dir", path)
    # Only programs worth caching: the train and eval steps, not the many tiny helpers.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path
