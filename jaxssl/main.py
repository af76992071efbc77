"""Command line: python -m jaxssl.main --config configs/NAME.py --workdir DIR.

The same as `jaxssl train ...` (jaxssl/cli.py): parse, validate, run the job the config names.
"""

import sys


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments, validates the config, then runs the job it names (exits)."""
    from jaxssl import cli

    cli.train(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
