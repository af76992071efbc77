"""The command line a new user meets: help, list, keys, and one line + exit 2 for bad input.

One subprocess checks the exit code and the one-line form of a bad input end to end; every
message is checked in-process (cli.checked runs exactly what `jaxssl train` runs before
anything is written), so the table stays cheap.
"""

import os
import subprocess
import sys

import ml_collections
import pytest
from PIL import Image

from jaxssl import cli
from jaxssl.config import ConfigError, base_config

from .helpers import ROOT

SIMCLR = f"{ROOT}/configs/simclr_digits.py"
CLM = f"{ROOT}/configs/causal_lm_pydoc.py"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad inputs on disk: a text file that is empty, one too short, a file as workdir,
    an image folder of mixed sizes, an unlabelled one; and a data dir for digits."""
    base = tmp_path_factory.mktemp("inputs")
    (base / "empty.txt").write_text("")
    (base / "short.txt").write_text("hello world")
    (base / "latin1.txt").write_bytes("café au lait ".encode("latin-1") * 50)
    (base / "a_file").write_text("x")
    for i, size in enumerate([(8, 8), (12, 10)]):
        (base / "mixed" / "train" / "c").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (i * 60, 0, 0)).save(base / "mixed" / "train" / "c" / f"{i}.png")
    (base / "flat").mkdir()
    (base / "none_key.py").write_text(
        "from jaxssl.config import base_config\n\n\ndef get_config():\n"
        "    c = base_config()\n    c.dataset.cap = None\n    return c\n"
    )
    for i in range(8):
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(base / "flat" / f"{i}.png")
    return base


def _argv(files, *extra, config=SIMCLR, workdir=None):
    workdir = workdir or str(files / "w")
    return [
        f"--config={config}",
        f"--workdir={workdir}",
        f"--config.dataset.data_dir={files / 'tfds'}",
        *extra,
    ]


# (case, argv builder, the exact message; {d} is the inputs folder)
CASES = [
    (
        "unknown key",
        lambda f: _argv(f, "--config.batchsize=32"),
        "unknown config key 'batchsize' (--config.batchsize): did you mean 'batch_size'? "
        f"`jaxssl keys {SIMCLR}` lists every key",
    ),
    (
        "unknown nested key",
        lambda f: _argv(f, "--config.optimizer.learnig_rate=0.1"),
        "unknown config key 'optimizer.learnig_rate' (--config.optimizer.learnig_rate): did you"
        f" mean 'optimizer.learning_rate'? `jaxssl keys {SIMCLR}` lists every key",
    ),
    (
        "missing config file",
        lambda f: ["--config=configs/nonexistent.py", "--workdir=w"],
        f"config file 'configs/nonexistent.py' not found (from {os.getcwd()}): `jaxssl list`"
        " shows the shipped configs",
    ),
    (
        "misspelt config file",
        lambda f: [f"--config={ROOT}/configs/simclr_digit.py", "--workdir=w"],
        f"config file '{ROOT}/configs/simclr_digit.py' not found (from {os.getcwd()}): did you"
        " mean configs/simclr_digits.py? `jaxssl list` shows the shipped configs",
    ),
    (
        "missing --config",
        lambda f: ["--workdir=w"],
        "missing --config: pass a config file, e.g. --config configs/simclr_digits.py"
        " (`jaxssl list` shows the shipped configs)",
    ),
    (
        "missing --workdir",
        lambda f: [f"--config={SIMCLR}"],
        "missing --workdir: pass the run's directory, e.g. --workdir runs/NAME",
    ),
    (
        "stray argument",
        lambda f: _argv(f, "extra"),
        "unexpected argument 'extra': options are --config, --workdir and --config.KEY=VALUE"
        " (values with spaces need quotes)",
    ),
    (
        "unknown option",
        lambda f: _argv(f, "--bogus=1"),
        "unknown option --bogus: options are --config, --workdir and --config.KEY=VALUE"
        " (`jaxssl help`)",
    ),
    (
        "value of the wrong type",
        lambda f: _argv(f, "--config.batch_size=abc"),
        "--config.batch_size=abc is not a valid value (invalid literal for int() with base 10:"
        " 'abc'): batch_size takes int, e.g. --config.batch_size=256",
    ),
    (
        "a value for a block",
        lambda f: _argv(f, "--config.model=3"),
        "--config.model=3 is not a valid value (Failed to parse '3' as a ConfigDict: `3` is not"
        " a dict): model is a block: set its keys one by one (--config.KEY.SUBKEY=VALUE)",
    ),
    (
        "a key the config leaves None",
        lambda f: ["--config", f"{f}/none_key.py", "--workdir=w", "--config.dataset.cap=5"],
        "--config.dataset.cap cannot be set: {d}/none_key.py leaves it None, whose type the"
        " command line cannot know; write ml_collections.config_dict.placeholder(TYPE) there"
        " instead of None",
    ),
    (
        "data_dir that cannot be written",
        lambda f: [f"--config={SIMCLR}", "--workdir=w", "--config.dataset.data_dir=/proc/jaxssl"],
        "dataset.name='digits': cannot prepare the embedded digits dataset in"
        " /proc/jaxssl/sklearn_digits (No such file or directory): set --config.dataset.data_dir"
        " to a folder you can write to",
    ),
    (
        "workdir is a file",
        lambda f: _argv(f, workdir=str(f / "a_file")),
        "--workdir={d}/a_file is a file, not a directory: pass a directory path (it is created"
        " if missing)",
    ),
    (
        "workdir under a file",
        lambda f: _argv(f, workdir=str(f / "a_file" / "run")),
        "--workdir={d}/a_file/run: {d}/a_file is a file, so the directory cannot be created:"
        " pass another path",
    ),
    (
        "workdir not writable",
        lambda f: _argv(f, workdir="/proc/jaxssl_run"),
        "--workdir=/proc/jaxssl_run: cannot write in /proc (No such file or directory): pass a"
        " directory you can write to",
    ),
    (
        "empty text file",
        lambda f: _argv(
            f, f"--config.dataset.name=text:{f}/empty.txt", "--config.batch_size=8", config=CLM
        ),
        "dataset.name='text:{d}/empty.txt': text file '{d}/empty.txt' is empty: text:FILE trains"
        " on the first 90% of its characters and validates on the last 10%; point it at a file"
        " with text",
    ),
    (
        "text file not UTF-8",
        lambda f: _argv(
            f, f"--config.dataset.name=text:{f}/latin1.txt", "--config.batch_size=8", config=CLM
        ),
        "dataset.name='text:{d}/latin1.txt': '{d}/latin1.txt' is not UTF-8 text (invalid"
        " continuation byte at byte 3): text datasets read UTF-8 files; convert it (e.g. `iconv"
        " -t UTF-8`) or point at another file",
    ),
    (
        "seq_len of zero",
        lambda f: _argv(f, "--config.dataset.seq_len=0", "--config.batch_size=8", config=CLM),
        "dataset.name='pydoc': dataset.seq_len=0 must be an integer >= 2 (tokens per window;"
        " e.g. 128)",
    ),
    (
        "text too small for the batch",
        lambda f: _argv(
            f, f"--config.dataset.name=text:{f}/short.txt", "--config.batch_size=8", config=CLM
        ),
        "batch_size=8 is larger than the 1 windows of dataset.seq_len=65 tokens of split 'train'"
        " of text:{d}/short.txt: lower --config.batch_size (at most 1) or dataset.seq_len, or"
        " use more text",
    ),
    (
        "image folder missing",
        lambda f: _argv(f, f"--config.dataset.name=folder:{f}/nope"),
        "dataset.name='folder:{d}/nope': image folder not found: '{d}/nope' (from "
        + os.getcwd()
        + "); set dataset.name to 'folder:DIR' with DIR/train/CLASS/*.jpg and DIR/val/CLASS/*.jpg",
    ),
    (
        "image sizes vary, no image_size",
        lambda f: _argv(f, f"--config.dataset.name=folder:{f}/mixed"),
        "dataset.name='folder:{d}/mixed': {d}/mixed has images of different sizes"
        " ({d}/mixed/train/c/0.png is 8x8, {d}/mixed/train/c/1.png is 10x12): set"
        " --config.dataset.image_size=N to resize them to N x N (dataset.resize: whole or crop)",
    ),
    (
        "negative dataset.num_workers",
        lambda f: _argv(f, "--config.dataset.num_workers=-1"),
        "dataset.name='digits': dataset.num_workers=-1 must be an integer >= 0 (0: read threads"
        " only)",
    ),
    (
        "unknown dataset.resize",
        lambda f: _argv(f, "--config.dataset.resize=pad"),
        "dataset.name='digits': dataset.resize='pad': use 'whole' (crops see the whole image)"
        " or 'crop' (shorter side + centre crop)",
    ),
    (
        "fine-tuning an unlabelled folder",
        lambda f: _argv(
            f,
            f"--config.dataset.name=folder:{f}/flat",
            "--config.batch_size=8",
            config=f"{ROOT}/configs/finetune_digits.py",
        ),
        "job=finetune needs labels and folder:{d}/flat has none (no class folders): use"
        " DIR/train/CLASS/ and DIR/val/CLASS/ folders, or job=embed",
    ),
    (
        "batch not divisible by the devices",
        lambda f: _argv(f, "--config.batch_size=30"),
        "batch_size=30 is not divisible by the 8 devices: use a multiple of 8, e.g."
        " --config.batch_size=24",
    ),
    (
        "unknown model",
        lambda f: _argv(f, "--config.model.name=resnet9000"),
        "model.name='resnet9000' is unknown: use one of ",
    ),
    (
        "unknown method",
        lambda f: _argv(f, "--config.method.name=nope"),
        "method.name='nope' is unknown: use one of ",
    ),
    (
        "missing npz file",
        lambda f: _argv(f, "--config.dataset.name=npz:/no/such/file.npz"),
        "dataset.name='npz:/no/such/file.npz': npz file not found",
    ),
    (
        "unknown optimizer",
        lambda f: _argv(f, "--config.optimizer.name=rmsprop"),
        "optimizer.name='rmsprop' is unknown: use one of ",
    ),
    (
        "probability out of range",
        lambda f: _argv(f, "--config.augment.flip_prob=2.0"),
        "augment: flip_prob must lie in [0, 1], got 2.0",
    ),
    (
        "a range given as one number",
        lambda f: _argv(f, "--config.augment.crop_scale=0.5"),
        "augment: IndexError: tuple index out of range: the ranges (crop_scale, crop_ratio,"
        " blur_sigma) take two numbers, e.g. --config.augment.crop_scale='(0.5, 1.0)'",
    ),
    (
        "method's own check",
        lambda f: _argv(f, "--config.method.temperature=-1.0"),
        "method.name='simclr': ",
    ),
    (
        "model value of the wrong kind",
        lambda f: _argv(f, "--config.model.widths=abc"),
        "model 'cnn_small' / method 'simclr' cannot be built from this config (TypeError: ",
    ),
    (
        "unknown evaluation feature",
        lambda f: _argv(f, "--config.eval.feature=nope"),
        "eval.feature='nope' is not a feature of cnn_small: use one of feature_map, pooled,"
        " stage1, stage2, stage3",
    ),
    (
        "negative eval_every",
        lambda f: _argv(f, "--config.eval_every=-1"),
        "eval_every=-1 must be an integer >= 0: set --config.eval_every=<int>",
    ),
    (
        "bad image_size",
        lambda f: _argv(f, "--config.dataset.image_size=0"),
        "dataset.image_size=0 must be a positive integer (or unset): e.g."
        " --config.dataset.image_size=32",
    ),
]


@pytest.mark.parametrize("case, argv_of, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_message(files, case, argv_of, message):
    with pytest.raises(ConfigError) as info:
        cli.checked(argv_of(files))
    got, want = str(info.value), message.replace("{d}", str(files))
    assert "\n" not in got
    if want.endswith((": ", "use one of ", "found")) or want.endswith("(TypeError: "):
        assert got.startswith(want), got  # the rest is the library's own words
    else:
        assert got == want
    assert not (files / "w").exists()


def test_wandb_missing_or_without_key_is_refused_before_anything_is_written(files, monkeypatch):
    argv = _argv(files, "--config.wandb.enabled=True")
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ConfigError, match="needs the wandb package, which is not installed"):
        cli.checked(argv)
    monkeypatch.delitem(sys.modules, "wandb")
    pytest.importorskip("wandb")
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(files / "no_netrc"))
    with pytest.raises(ConfigError) as info:
        cli.checked(argv)
    assert str(info.value) == (
        "wandb.enabled=True but W&B has no API key on this machine: run `wandb login`, set"
        " WANDB_API_KEY, or WANDB_MODE=offline to log locally (upload later with wandb sync)"
    )
    monkeypatch.setenv("WANDB_MODE", "offline")
    cli.checked(argv)  # offline needs no key
    assert not (files / "w").exists()


def test_commands_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["trian"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "jaxssl: config error: unknown command 'trian': did you mean `jaxssl train`? see"
        " `jaxssl help`\n"
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["keys"])
    assert info.value.code == 2
    assert "keys needs a config file" in capsys.readouterr().err
    cli.main(["--help"])  # returns: the console script exits 0
    out = capsys.readouterr().out
    assert out.startswith("usage:\n  jaxssl train --config configs/NAME.py --workdir DIR")
    assert "examples:\n  jaxssl train --config configs/simclr_digits.py" in out
    with pytest.raises(SystemExit) as info:  # python -m jaxssl.main --help
        cli.train(["--help"])
    assert info.value.code == 0 and capsys.readouterr().out == out


def test_train_config_error_exits_2_and_leaves_the_collector_on(capsys):
    import gc

    # train turns the collector off while it imports and validates; a bad config exits there.
    with pytest.raises(SystemExit) as info:
        cli.train(["--config", str(ROOT / "configs/simclr_digits.py"), "--config.batch_sze=8"])
    assert info.value.code == 2
    assert "unknown config key 'batch_sze'" in capsys.readouterr().err
    assert gc.isenabled()


def test_list_names_every_job_method_model_kind_and_config(capsys):
    from jaxssl import jobs, methods, models
    from jaxssl.data import sources

    cli.main(["list"])
    out = capsys.readouterr().out
    for names in (jobs.JOBS, methods.METHODS, models.MODELS, sources.KINDS):
        assert all(f"\n  {n} " in out for n in names), names
    assert "\n  simclr        NT-Xent over the global batch" in out
    for path in sorted((ROOT / "configs").glob("*.py")):
        assert f"configs/{path.name}" in out
    line = next(x for x in out.splitlines() if "configs/simclr_digits.py" in x)
    assert line.endswith(
        "SimCLR on scikit-learn's bundled handwritten digits (1,437 train / 360 test, 8x8 grey)."
    )


def test_keys_show_values_and_meanings(capsys):
    cli.main(["keys", SIMCLR, "--config.batch_size=32"])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["batch_size"].split()[1] == "32"
    assert rows["batch_size"].endswith("global, over all devices and hosts")
    assert rows["eval_every"].endswith("0: only at the end")
    assert rows["augment.flip_prob"].endswith("set by default_config() in jaxssl/augment/views.py")
    assert rows["mesh.fsdp"].endswith("(1: pure data parallel)")


def test_every_base_key_has_a_meaning():
    """No key is documented only in code: each base_config key carries a trailing comment."""
    meanings = cli.meanings(f"{ROOT}/configs/simclr_digits.py")
    missing = [k for k in cli.flat_keys(base_config()) if not meanings.get(k)]
    assert not missing, f"base_config keys without a trailing # comment: {missing}"


def test_block_comments_come_from_the_function_that_builds_the_block():
    meanings = cli.meanings(f"{ROOT}/configs/finetune_digits.py")
    assert meanings["finetune.mode"].startswith("linear | partial | full | lora")
    assert meanings["init_from"].startswith("a pre-training workdir")  # the config file's own


def test_one_bad_input_end_to_end_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxssl.main",
            "--config",
            SIMCLR,
            "--workdir",
            str(tmp_path / "w"),
            "--config.batchsize=32",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "jaxssl: config error: unknown config key 'batchsize' (--config.batchsize): did you mean"
        f" 'batch_size'? `jaxssl keys {SIMCLR}` lists every key\n"
    )
    assert proc.stdout == ""
    assert not (tmp_path / "w").exists()


def test_results_block_names_metrics_paths_and_tensorboard(tmp_path):
    from jaxssl import jobs

    (tmp_path / "plots").mkdir()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "events.out.tfevents.1.host").write_text("")
    summary = {"job": "pretrain", "knn_top1": 0.9, "linear_probe_top1": 0.95, "steps": 4}
    text = jobs.results_block(summary, str(tmp_path), 75.0)
    assert text.splitlines() == [
        "jaxssl: pretrain finished in 1 min 15 s",
        "  knn_top1           0.9000",
        "  linear_probe_top1  0.9500",
        "  steps 4, 0 params",
        f"  summary:     {tmp_path}/summary.json",
        f"  plots:       {tmp_path}/plots",
        f"  checkpoints: {tmp_path}/checkpoints",
        f"  tensorboard: tensorboard --logdir {tmp_path}",
    ]


def test_api_load_config_applies_and_checks_overrides():
    from jaxssl import api

    config = api.load_config(SIMCLR, {"model.widths": [8, 16], "optimizer.learning_rate": 1})
    assert config.model.widths == (8, 16) and config.optimizer.learning_rate == 1.0
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        api.load_config(SIMCLR, {"batchsize": 3})
    with pytest.raises(ConfigError, match="batch_size takes int, e.g. 256"):
        api.load_config(SIMCLR, {"batch_size": "x"})
    with pytest.raises(AttributeError):  # locked like the command line's: no new keys
        config.new_key = 1
    assert isinstance(config, ml_collections.ConfigDict)


def test_method_options_a_config_leaves_out_can_be_set_and_are_listed(capsys):
    """Method.OPTIONS: the loader fills in what a config file leaves out, so the command line
    sets it and the method reads the value set."""
    import jax

    from jaxssl import methods

    from .helpers import file_config

    lm = f"{ROOT}/configs/causal_lm_pydoc.py"
    assert "proj_last_bn" not in file_config("simclr_digits").method
    assert "corruption" not in file_config("causal_lm_pydoc").method
    leaves = {}
    for last_bn in (True, False):
        config, _ = cli.parse(
            [f"--config={SIMCLR}", f"--config.method.proj_last_bn={last_bn}"], need_workdir=False
        )
        image = jax.ShapeDtypeStruct((8, 8, 8, 1), "uint8")
        init = methods.get_method(config).init
        _, model_state = jax.eval_shape(init, jax.random.PRNGKey(0), {"image": image})
        leaves[last_bn] = len(jax.tree.leaves(model_state["batch_stats"]))
    assert leaves[True] == leaves[False] + 2  # the last batch norm's mean and variance

    for noise in (0.1, 0.0):
        argv = [f"--config={lm}", f"--config.method.corruption.token_noise={noise}"]
        config, _ = cli.parse(argv, need_workdir=False)
        assert methods.get_method(config).corruption.enabled == (noise > 0)

    cli.main(["keys", SIMCLR])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["method.proj_last_bn"].endswith("batch norm on the projection's output (SimCLR v2)")
