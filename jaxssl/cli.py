"""The `jaxssl` command: train (== python -m jaxssl.main), list, keys, help.

Config overrides keep absl / ml_collections syntax (`--config.optimizer.learning_rate=0.3`).
Every bad input ends in one line naming the problem and the fix, and exit code 2, before
anything is written: parse errors here, config values in jaxssl/validate.py.
"""

import ast
import difflib
import gc
import importlib.util
import io
import os
import pathlib
import re
import sys
import tokenize
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from jaxssl.config import ConfigError

PROG = "jaxssl"
USAGE = """\
usage:
  jaxssl train --config configs/NAME.py --workdir DIR [--config.KEY=VALUE ...]
  jaxssl list                    jobs, methods, models, dataset kinds and the shipped configs
  jaxssl keys configs/NAME.py    every key of a config: its value there and what it means
  jaxssl help                    this text

`python -m jaxssl.main --config ... --workdir ...` is the same as `jaxssl train ...`.
Any key can be overridden: --config.batch_size=128 --config.optimizer.learning_rate=0.3
A workdir that holds a checkpoint is resumed by the same command.

examples:
  jaxssl train --config configs/simclr_digits.py --workdir runs/simclr_digits
  jaxssl train --config configs/simclr_digits.py --workdir runs/quick \\
      --config.total_steps=100 --config.eval_every=50
  jaxssl train --config configs/finetune_digits.py --workdir runs/ft \\
      --config.init_from=runs/simclr_digits
  jaxssl train --config configs/simclr_digits.py --workdir runs/mine \\
      --config.dataset.name=folder:path/to/images --config.dataset.image_size=32
  jaxssl keys configs/simclr_digits.py
  tensorboard --logdir runs/simclr_digits

exit codes: 0 finished (or stopped by SIGTERM after a checkpoint: run it again to resume),
1 non-finite loss, 2 bad input (one line: the problem and the fix), 3 workdir held by a live run
"""
_OVERRIDE = re.compile(r"^-{1,2}(?:no)?config\.([^=]+)")


def _configs_dir() -> pathlib.Path:
    """configs/ of the working directory, else of the checkout this package runs from."""
    here = pathlib.Path("configs")
    return here if here.is_dir() else pathlib.Path(__file__).resolve().parents[1] / "configs"


def _shipped_configs() -> list[pathlib.Path]:
    folder = _configs_dir()
    return sorted(folder.glob("*.py")) if folder.is_dir() else []


# --- parsing ---------------------------------------------------------------------------------


def _joined(argv: Sequence[str]) -> list[str]:
    """`--config X` and `--workdir X` as `--config=X`, `--workdir=X` (absl accepts both)."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if re.fullmatch(r"-{1,2}(config|workdir)", arg) and i + 1 < len(argv):
            out.append(f"--{arg.lstrip('-')}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _value_of(argv: Sequence[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in argv if re.match(rf"^-{{1,2}}{name}=", a)]
    return values[-1] if values else None


def _load(spec: str) -> ml_collections.ConfigDict:
    """get_config() of a config file ("path" or "path:arg"); ConfigError in one line."""
    path, _, arg = spec.partition(":")
    if not path:
        raise ConfigError("--config is empty: pass a config file, e.g. configs/simclr_digits.py")
    if not os.path.isfile(path):
        stems = [p.stem for p in _shipped_configs()]
        close = difflib.get_close_matches(pathlib.Path(path).stem, stems, n=1, cutoff=0.75)
        hint = f"did you mean configs/{close[0]}.py? " if close else ""
        raise ConfigError(
            f"config file {path!r} not found (from {os.getcwd()}): {hint}`jaxssl list` shows the"
            " shipped configs"
        )
    try:
        module_spec = importlib.util.spec_from_file_location("jaxssl_user_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"{path} has no get_config(): a config file defines get_config()")
        config = module.get_config(*([arg] if arg else []))
    except ConfigError:
        raise
    except Exception as e:  # the user's file: whatever it raises is reported in one line
        line = next(
            (f.lineno for f in reversed(_frames(e)) if os.path.samefile(f.filename, path)), None
        )
        where = f"{path}:{line}" if line else path
        message = str(e).splitlines()[0] if str(e) else ""
        raise ConfigError(f"{where}: {type(e).__name__}: {message}: fix the config file") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not ConfigDict")
    from jaxssl import methods  # the registry imports every method and model

    methods.fill_options(config)
    return config


def _frames(error: BaseException) -> list[Any]:
    import traceback

    frames = list(traceback.extract_tb(error.__traceback__))
    if isinstance(error, SyntaxError) and error.filename:
        frames.append(type("F", (), {"filename": error.filename, "lineno": error.lineno}))
    return [f for f in frames if f.filename and os.path.exists(f.filename)]


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf of a config (blocks recursed into)."""
    out: dict[str, Any] = {}
    for key in sorted(config.keys()):
        value = config[key]
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_override(config: ml_collections.ConfigDict, key: str, arg: str, path: str) -> None:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            known = list(flat_keys(config)) + [k for k in config.keys()]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            if not close:  # a misspelt last part under the right block: compare those alone
                last = key.rsplit(".", 1)[-1]
                tails = {k.rsplit(".", 1)[-1]: k for k in known}
                close = [tails[m] for m in difflib.get_close_matches(last, list(tails), n=1)]
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown config key {key!r} ({arg.split('=', 1)[0]}): {hint}`jaxssl keys {path}`"
                " lists every key"
            )
        node = node[part]


def parse(
    argv: Sequence[str], *, need_workdir: bool = True
) -> tuple[ml_collections.ConfigDict, str | None]:
    """(config, workdir) of command-line arguments (no program name); ConfigError in one line.

    absl's own flags (--verbosity ...) go to absl; --config, --workdir and the overrides are
    parsed by ml_collections' config flag on a FlagValues of their own, so parsing twice in
    one process (the API, tests) sees only these arguments.
    """
    argv = _joined(argv)
    ours = [a for a in argv if not _is_absl_flag(a)]
    try:
        flags.FLAGS([PROG, *[a for a in argv if _is_absl_flag(a)]])
    except flags.Error as e:
        raise ConfigError(f"{e}: see `jaxssl help`") from None
    spec = _value_of(ours, "config")
    if spec is None:
        raise ConfigError(
            "missing --config: pass a config file, e.g. --config configs/simclr_digits.py"
            " (`jaxssl list` shows the shipped configs)"
        )
    config = _load(spec)
    for arg in ours:
        match = _OVERRIDE.match(arg)
        if match:
            _check_override(config, match.group(1), arg, spec.partition(":")[0])
    # The loaded config itself (method options filled in) takes the overrides.
    ours = [a for a in ours if not re.match(r"^-{1,2}config=", a)]
    values = flags.FlagValues()
    try:
        config_flags.DEFINE_config_dict(
            "config", config, "config", flag_values=values, lock_config=True, sys_argv=[PROG, *ours]
        )
    except config_flags.config_flags.UnsupportedOperationError as e:  # overriding a None key
        key = re.search(r"field config\.(\S+) is", str(e))
        raise ConfigError(
            f"--config.{key.group(1) if key else 'KEY'} cannot be set: {spec} leaves it None, whose"
            " type the command line cannot know; write ml_collections.config_dict.placeholder(TYPE)"
            " there instead of None"
        ) from None
    flags.DEFINE_string("workdir", None, "run directory", flag_values=values)
    try:
        rest = values([PROG, *ours])[1:]
    except flags.UnrecognizedFlagError as e:
        raise ConfigError(
            f"unknown option --{e.flagname}: options are --config, --workdir and --config.KEY=VALUE"
            " (`jaxssl help`)"
        ) from None
    except Exception as e:  # absl's IllegalFlagValueError, ml_collections' TypeError ...
        raise ConfigError(_value_error(e, config)) from None
    if rest:
        raise ConfigError(
            f"unexpected argument {rest[0]!r}: options are --config, --workdir and"
            " --config.KEY=VALUE (values with spaces need quotes)"
        )
    workdir = values.workdir
    if need_workdir and workdir is None:
        raise ConfigError("missing --workdir: pass the run's directory, e.g. --workdir runs/NAME")
    return values.config, workdir


def _value_error(error: Exception, config: ml_collections.ConfigDict) -> str:
    """One line for an override value that does not parse: the value, why, and an example."""
    message = (str(error).splitlines() or [type(error).__name__])[0].rstrip(".")
    match = re.match(r"flag --config\.([^=]+)=(.*?): (.*)", message)
    if not match:
        return f"{message}: give each --config.KEY a value of the key's type"
    key, value, why = match.groups()
    current = config
    for part in key.split("."):
        current = current[part]
    if isinstance(current, ml_collections.ConfigDict):
        takes = "is a block: set its keys one by one (--config.KEY.SUBKEY=VALUE)"
    else:
        takes = f"takes {type(current).__name__}, e.g. --config.{key}={current!r}"
    return f"--config.{key}={value} is not a valid value ({why.rstrip('.')}): {key} {takes}"


def _is_absl_flag(arg: str) -> bool:
    """--verbosity=1, --logtostderr ...: absl's own flags (not --config*, not --workdir)."""
    if not arg.startswith("-"):
        return False
    name = arg.lstrip("-").split("=", 1)[0]
    if name.startswith(("config", "noconfig")) or name == "workdir" or name in ("help", "h"):
        return False
    bare = name[2:] if name.startswith("no") and name[2:] in flags.FLAGS else name
    return bare in flags.FLAGS


def fail(error: Exception) -> None:
    """The one line of a bad input, and exit code 2."""
    print(f"jaxssl: config error: {error}", file=sys.stderr, flush=True)
    sys.exit(2)


# --- train -----------------------------------------------------------------------------------


def train(argv: Sequence[str]) -> None:
    """`jaxssl train ARGS` / `python -m jaxssl.main ARGS`: parse, validate, run (exits)."""
    if any(a in ("-h", "--help", "-help", "--helpfull", "help") for a in argv):
        print(USAGE, end="")
        sys.exit(0)
    parsed: dict[str, Any] = {}
    # Imports and validation create millions of objects that live as long as the process; the
    # collector's full passes over them cost start-up 0.25 s (imports) and a third of the step's
    # tracing: none runs until they are frozen out of its scans in _run.
    gc.disable()

    def parse_flags(full_argv: list[str]) -> list[str]:
        try:
            parsed["config"], parsed["workdir"] = checked(full_argv[1:])
        except ConfigError as e:
            fail(e)
        return full_argv[:1]

    try:
        app.run(lambda _: _run(parsed["config"], parsed["workdir"]), [PROG, *argv], parse_flags)
    finally:  # a config error exits before _run: an in-process caller gets its collector back
        gc.enable()


def checked(argv: Sequence[str]) -> tuple[ml_collections.ConfigDict, str]:
    """parse + the workdir and config checks of jaxssl/validate.py: what `train` runs before
    anything is written. Raises ConfigError (one line) for the first problem."""
    from jaxssl import jobs, validate  # jax starts here

    config, workdir = parse(argv)
    validate.check_workdir(workdir)
    jobs.prepare(config)
    return config, workdir


def _run(config: ml_collections.ConfigDict, workdir: str) -> None:
    from jaxssl import jobs

    gc.freeze()  # everything imported so far is permanent: later collections skip it
    gc.enable()

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    logging.info("config:\n%s", config)
    jobs.run(config, workdir)


# --- list ------------------------------------------------------------------------------------


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _section(title: str, rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(name) for name, _ in rows), default=0)
    return [title, *(f"  {name:<{width}}  {text}".rstrip() for name, text in rows), ""]


_SHAPE_FIELDS = ("widths", "stage_sizes", "block", "width", "depth", "num_heads", "causal")


def _model_row(models: Any, name: str) -> tuple[str, str]:
    """name, the class's first doc line and its shape fields (built with defaults, no params)."""
    try:
        module = models.get_model(name)
    except Exception:  # a model that needs arguments: its class's doc alone
        return name, _first_line(getattr(models.MODELS[name], "__doc__", ""))
    fields = [
        f"{f}={getattr(module, f)}"
        for f in _SHAPE_FIELDS
        if getattr(module, f, None) not in (None, ())
    ]
    doc = _first_line(type(module).__doc__).rstrip(".")
    return name, f"{doc} ({', '.join(fields)})" if fields else doc


def listing() -> str:
    """The text of `jaxssl list`."""
    import importlib

    from jaxssl import jobs, methods, models
    from jaxssl.data import sources

    job_rows = []
    for name, module in jobs.JOBS.items():
        spec = importlib.util.find_spec(module)
        doc = ast.get_docstring(ast.parse(pathlib.Path(spec.origin).read_text())) if spec else ""
        job_rows.append((name, _first_line(doc)))
    config_rows = []
    for path in _shipped_configs():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
        config_rows.append((shown, _first_line(doc)))
    lines = _section("jobs (config.job):", job_rows)
    lines += _section(
        "methods (method.name, pretrain):",
        [(n, _first_line(c.__doc__)) for n, c in sorted(methods.METHODS.items())],
    )
    lines += _section("models (model.name):", [_model_row(models, n) for n in models.MODELS])
    lines += _section("datasets (dataset.name):", list(sources.KINDS.items()))
    lines += _section("configs (jaxssl keys PATH shows a config's keys):", config_rows)
    return "\n".join(lines).rstrip() + "\n"


# --- keys ------------------------------------------------------------------------------------


def _trailing_comments(source: str) -> dict[int, str]:
    """Line number -> text of a comment that follows code on that line."""
    lines = source.splitlines()
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        row, col = tok.start
        if tok.type == tokenize.COMMENT and lines[row - 1][:col].strip():
            out[row] = tok.string.lstrip("#").strip()
    return out


def _chain(node: ast.AST) -> list[str] | None:
    """`c.a.b` -> ["c", "a", "b"]; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _literal_keys(node: ast.AST, comments: dict[int, str], prefix: str) -> dict[str, str]:
    """Comments on the keys of dict literals / dict(k=v) calls directly under node."""
    out = {}
    if isinstance(node, ast.Call):
        for kw in node.keywords:
            if kw.arg and kw.value.lineno in comments:
                out[prefix + kw.arg] = comments[kw.value.lineno]
        for arg in node.args:
            out.update(_literal_keys(arg, comments, prefix))
    elif isinstance(node, ast.Dict):
        for key in node.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if key.lineno in comments:
                    out[prefix + key.value] = comments[key.lineno]
    return out


def _comments_of(tree: ast.AST, comments: dict[int, str]) -> dict[str, str]:
    """Dotted path (without the config variable) -> trailing comment, from `c.a.b = v  # ...`."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        chain = _chain(node.targets[0])
        if not chain or len(chain) < 2:
            continue
        key = ".".join(chain[1:])
        line = node.lineno if node.lineno in comments else node.end_lineno
        if line in comments:
            out[key] = comments[line]
        out.update(_literal_keys(node.value, comments, key + "."))
    return out


def _parsed(path: str) -> tuple[ast.AST, dict[int, str]]:
    source = pathlib.Path(path).read_text()
    return ast.parse(source), _trailing_comments(source)


def _blocks(tree: ast.AST) -> dict[str, tuple[str, str]]:
    """Config blocks a file builds with an imported jaxssl function: path -> (module, fn)."""
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxssl"):
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            chain = _chain(node.targets[0]) if len(node.targets) == 1 else None
            fn = node.value.func
            if chain and len(chain) > 1 and isinstance(fn, ast.Name) and fn.id in imported:
                out[".".join(chain[1:])] = imported[fn.id]
    return out


def _block_comments(module: str, function: str) -> dict[str, str]:
    """Comments on the keys a block-building function sets, relative to the block."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return {}
    tree, comments = _parsed(spec.origin)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            found = _comments_of(node, comments)
            for ret in ast.walk(node):  # `return dict(a=1,  # ...)`
                if isinstance(ret, ast.Return) and ret.value is not None:
                    found.update(_literal_keys(ret.value, comments, ""))
            return found
    return {}


def meanings(config_path: str) -> dict[str, str]:
    """Dotted key -> meaning: trailing comments of the config file, of base_config and of the
    functions that build its blocks (finetune_block ...), in that order of precedence.
    Keys of a block without such a comment point at the module that defines the block."""
    from jaxssl import config as config_module

    tree, comments = _parsed(config_path)
    out: dict[str, str] = {}
    blocks = _blocks(tree)
    for block, (module, function) in blocks.items():
        for key, text in _block_comments(module, function).items():
            out[f"{block}.{key}"] = text
    base_tree, base_comments = _parsed(config_module.__file__)
    out.update(_comments_of(base_tree, base_comments))
    out.update(_comments_of(tree, comments))
    for block, (module, function) in blocks.items():
        out.setdefault(f"{block}.*", f"set by {function}() in {module.replace('.', '/')}.py")
    return out


def keys_text(argv: Sequence[str]) -> str:
    """The text of `jaxssl keys CONFIG [--config.KEY=VALUE ...]`."""
    args = list(argv)
    if args and not args[0].startswith("-"):
        args[0] = f"--config={args[0]}"
    config, _ = parse(args, need_workdir=False)
    path = _value_of(_joined(args), "config").partition(":")[0]
    known = meanings(path)
    from jaxssl import methods

    method = methods.METHODS.get(config.method.get("name"))
    for key, option in (method.OPTIONS if method else {}).items():  # keys it may leave out
        known.setdefault(f"method.{key}", option.meaning)
        known.setdefault(f"method.{key}.*", option.meaning)
    rows = []
    for key, value in flat_keys(config).items():
        meaning = known.get(key)
        if meaning is None:
            block = next((b for b in sorted(known, reverse=True) if key.startswith(b[:-1])), None)
            meaning = known[block] if block and block.endswith(".*") else ""
        rows.append((key, repr(value), meaning))
    width_k = max(len(k) for k, _, _ in rows)
    width_v = min(24, max(len(v) for _, v, _ in rows))
    head = f"{path}: each key, its value in this config, and what it means"
    body = [f"  {k:<{width_k}}  {v:<{width_v}}  {m}".rstrip() for k, v, m in rows]
    return "\n".join([head, *body]) + "\n"


# --- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """The `jaxssl` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else "help"
    if command in ("help", "-h", "--help", "-help"):
        print(USAGE, end="")
        return
    try:
        if command == "train":
            train(argv[1:])
        elif command == "list":
            print(listing(), end="")
        elif command == "keys":
            if len(argv) < 2:
                raise ConfigError("keys needs a config file: jaxssl keys configs/NAME.py")
            print(keys_text(argv[1:]), end="")
        elif command.startswith("-"):  # `jaxssl --config ...`: the train command's arguments
            train(argv)
        else:
            known = difflib.get_close_matches(command, ["train", "list", "keys", "help"], n=1)
            hint = f"did you mean `jaxssl {known[0]}`? " if known else ""
            raise ConfigError(f"unknown command {command!r}: {hint}see `jaxssl help`")
    except ConfigError as e:
        fail(e)
