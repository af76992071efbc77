"""Command line: python -m jaxssl.main --config configs/NAME.py --workdir DIR."""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (a get_config() module).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    """Validates the config, then runs the job it names."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from jaxssl import jobs  # import after flag parsing: jax starts here
    from jaxssl.config import ConfigError

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config = _CONFIG.value
    try:
        jobs.prepare(config)
    except ConfigError as e:
        print(f"jaxssl: config error: {e}", file=sys.stderr)
        sys.exit(2)
    logging.info("config:\n%s", config)
    jobs.run(config, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
