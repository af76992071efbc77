"""When a CLI run replaces its process after the first step (jaxssl/train/restart.py)."""

import pytest

from jaxssl.train import compile_cache, restart, xla_cpu


@pytest.fixture
def qualifying(tmp_path, monkeypatch):
    """A CLI process on jaxssl's heap setting whose compilation cache is tmp_path/cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setattr(restart, "_from_cli", True)
    monkeypatch.setattr(xla_cpu, "_kept", True)
    monkeypatch.setattr(compile_cache, "entries", lambda: {p.name for p in cache.iterdir()})
    monkeypatch.delenv(restart.ENV_RESTARTED, raising=False)
    monkeypatch.setenv(restart.ENV_MIN_STEPS, "10")
    return cache


def _step_writing(cache, calls):
    """A stand-in train step: call i writes the cache entries named in calls[i]."""
    count = [0]

    def step(state, batch):
        for name in calls[count[0]]:
            (cache / name).write_text("")
        count[0] += 1
        return state + 1, batch

    return step


def test_the_first_call_that_caches_a_program_asks_for_a_restart(qualifying):
    step = restart.watch(_step_writing(qualifying, [["jit_train_step-a"]]), 10, lambda: False)
    with pytest.raises(restart.Restart):
        step(0, None)


def test_no_restart_when_the_first_call_loaded_its_program(qualifying):
    step = restart.watch(_step_writing(qualifying, [[], ["jit_eval-b"]]), 10, lambda: False)
    assert step(0, None) == (1, None)
    assert step(1, None) == (2, None)  # a later compilation (an evaluation) does not restart


def test_no_restart_while_a_stop_signal_is_pending(qualifying):
    step = restart.watch(_step_writing(qualifying, [["jit_train_step-a"]]), 10, lambda: True)
    assert step(0, None) == (1, None)


@pytest.mark.parametrize(
    "change",
    ["too_few_steps", "threshold_zero", "restarted", "system_malloc", "not_cli", "no_cache"],
)
def test_the_step_is_left_alone_when_the_run_does_not_qualify(qualifying, monkeypatch, change):
    steps_left = 9 if change == "too_few_steps" else 10
    if change == "threshold_zero":
        monkeypatch.setenv(restart.ENV_MIN_STEPS, "0")
    if change == "restarted":
        monkeypatch.setenv(restart.ENV_RESTARTED, "1")
    if change == "system_malloc":
        monkeypatch.setattr(xla_cpu, "_kept", False)
    if change == "not_cli":
        monkeypatch.setattr(restart, "_from_cli", False)
    if change == "no_cache":
        monkeypatch.setattr(compile_cache, "entries", lambda: None)
    train_step = _step_writing(qualifying, [["jit_train_step-a"]])
    assert restart.watch(train_step, steps_left, lambda: False) is train_step
