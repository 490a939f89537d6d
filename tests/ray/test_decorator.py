"""``@supervised`` without Ray: options checked on the driver, the sync/async bridge, sinks, restarts.

The decorated function needs no Ray to run (Ray only supplies the task id), so these tests call
it directly, in this process, and run without the ray extra.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from pathlib import Path

import pytest

from crashsight import ConfigurationError, RulesError
from crashsight.ray import RayEvent, RunnerFailedError, supervised
from crashsight.supervisor.status import RunnerFailed, RunnerSucceeded

pytest.importorskip(
    "cloudpickle", reason="cloudpickle is not installed: pip install 'crashsight[ray]'"
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"deadline": 0}, "deadline must be a positive", id="deadline"),
        pytest.param({"no_progress_timeout": -1}, "no_progress_timeout must", id="no-progress"),
        pytest.param({"restarts": -1}, "restarts must be a number >= 0", id="restarts"),
        pytest.param({"max_payload_bytes": 10}, "max_payload_bytes must be", id="payload"),
    ],
)
def test_bad_options_fail_at_decoration(options: dict[str, float], message: str) -> None:
    """A bad option is a ConfigurationError on the driver, before any task is submitted."""
    with pytest.raises(ConfigurationError, match=message):
        supervised(**options)  # type: ignore[arg-type]


def test_a_bad_rules_file_fails_at_decoration(tmp_path: Path) -> None:
    """The rules file is read where the decorator runs, so its errors surface there."""
    rules = tmp_path / "rules.toml"
    rules.write_text("[[rule]]\ncategory = 'x'\nnot_a_matcher = 1\n")
    with pytest.raises(RulesError, match=r"rules\.toml"):
        supervised(rules=rules)


def test_user_rules_decide_the_verdict(tmp_path: Path) -> None:
    """Rules given to the decorator are tried first, as with the Supervisor."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        "[[rule]]\ncategory = 'toktx'\nsubcategory = 'encode'\nhint = 'check the texture'\n"
        "exception = 'RuntimeError'\nmessage = '^toktx exit'\n"
    )

    @supervised(rules=rules)
    def encode() -> None:
        raise RuntimeError("toktx exit 3")

    with pytest.raises(RunnerFailedError) as caught:
        encode()
    status = caught.value.status
    assert isinstance(status, RunnerFailed)
    assert (status.category, status.subcategory, status.hint) == (
        "toktx",
        "encode",
        "check the texture",
    )


def test_the_error_pickles_with_its_whole_status() -> None:
    """RunnerFailedError crosses processes (Ray pickles it) and keeps status, message, context."""

    @supervised()
    def fail() -> None:
        raise ValueError("shard 3 is corrupt")

    with pytest.raises(RunnerFailedError) as caught:
        fail()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy.status, RunnerFailed)
    assert copy.status == caught.value.status
    assert str(copy) == str(caught.value)
    assert str(copy).startswith("crashsight: python/ValueError: shard 3 is corrupt\n")
    assert copy.context == caught.value.context


def test_a_sync_body_called_inside_a_running_loop_runs_on_a_thread() -> None:
    """A plain method of an async actor is called with a loop running: it still works."""

    @supervised()
    def double(x: int) -> int:
        return 2 * x

    async def from_a_loop() -> int:
        return double(21)

    assert asyncio.run(from_a_loop()) == 42


def test_an_async_body_is_awaited_in_the_runner() -> None:
    """An ``async def`` body gets an async wrapper, and its coroutine runs in the child."""

    @supervised()
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    assert asyncio.run(double(21)) == 42


def test_a_failing_event_sink_never_fails_the_call(capfd: pytest.CaptureFixture[str]) -> None:
    """A sink that raises is reported once on stderr; the call's own result is unaffected."""
    calls: list[RayEvent] = []

    def sink(event: RayEvent) -> None:
        calls.append(event)
        raise ConnectionError("queue actor is gone")

    @supervised(events=sink)
    def answer() -> int:
        return 42

    assert answer() == 42
    assert len(calls) == 1
    err = capfd.readouterr().err
    assert err.count("the events sink raised ConnectionError: queue actor is gone") == 1


def test_restarts_retry_a_failed_call(tmp_path: Path) -> None:
    """With restarts, a call that fails once and then succeeds returns its value."""
    marker = tmp_path / "first-attempt-done"
    events: list[RayEvent] = []

    @supervised(restarts=1, events=events.append)
    def flaky() -> str:
        if not marker.exists():
            marker.touch()
            raise ConnectionResetError("peer went away")
        return "second time lucky"

    assert flaky() == "second time lucky"
    statuses = [e.event for e in events if isinstance(e.event, RunnerFailed | RunnerSucceeded)]
    assert [s.status for s in statuses] == ["failed", "succeeded"]


def test_a_missing_cloudpickle_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the ray extra's cloudpickle, a call fails with a clear ConfigurationError."""
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # makes `import cloudpickle` fail

    @supervised()
    def answer() -> int:
        return 42

    with pytest.raises(ConfigurationError, match=r"pip install 'crashsight\[ray\]'"):
        answer()
