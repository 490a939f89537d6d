"""The calls workers make: no-ops when unsupervised, the right messages when supervised."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

from crashsight.errors import FrameTooLargeError, ProtocolError
from crashsight.framing import FrameDecoder, UserModelEvent
from crashsight.protocol import Heartbeat, Message, Progress, Ready, TaskFinished, TaskStarted
from crashsight.runner import api
from crashsight.runner.channel import CHANNEL_FD_ENV, MAX_FRAME_ENV

if TYPE_CHECKING:
    from crashsight.framing import Decoded


class Point(BaseModel):
    """A user's own event model."""

    x: int
    label: str


@pytest.fixture(autouse=True)
def fresh_api_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts unconnected, and the module's globals are restored afterwards."""
    monkeypatch.setattr(api, "_channel", None)
    monkeypatch.setattr(api, "_broken_reported", False)
    monkeypatch.delenv(CHANNEL_FD_ENV, raising=False)
    monkeypatch.delenv(MAX_FRAME_ENV, raising=False)


@pytest.fixture
def supervisor_end(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """The supervisor's end of a socketpair whose other end is announced in the environment."""
    runner_end, supervisor_end = socket.socketpair()
    fd = runner_end.detach()
    monkeypatch.setenv(CHANNEL_FD_ENV, str(fd))
    with supervisor_end:
        yield supervisor_end
        channel = api.current_channel()
        if channel is None:  # never connected: the descriptor is still ours to close
            os.close(fd)
        else:
            channel.close()


def _received(supervisor_end: socket.socket) -> list[Message]:
    """Close this process's channel, then read and decode everything that was sent."""
    channel = api.current_channel()
    assert channel is not None
    channel.close()
    supervisor_end.settimeout(10)
    decoder = FrameDecoder()
    items: list[Decoded] = []
    while data := supervisor_end.recv(65536):
        items += decoder.feed(data)
    items += decoder.close()
    messages = [item for item in items if not isinstance(item, ProtocolError | UserModelEvent)]
    assert messages == items, "the channel carried something that is not a clean frame"
    return messages


def _without_ready(messages: list[Message]) -> list[Message]:
    assert isinstance(messages[0], Ready)
    return messages[1:]


def test_unsupervised_calls_do_nothing() -> None:
    """Without a channel in the environment, every call is a no-op and nothing gets connected."""
    assert api.connect() is None
    api.emit(Point(x=1, label="a"))
    api.emit(Heartbeat())
    api.heartbeat()
    api.progress("halfway", 0.5)
    with api.task("t1"):
        pass
    assert api.current_channel() is None


def test_unsupervised_task_propagates_the_exception() -> None:
    """Outside a supervisor, `task` still runs its block and lets its exception through."""
    ran: list[str] = []

    def work() -> None:
        with api.task("t1"):
            ran.append("t1")
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        work()
    assert ran == ["t1"]


def test_connect_announces_ready_first(supervisor_end: socket.socket) -> None:
    """`connect()` consumes the environment, sends Ready as message 0 and is idempotent."""
    channel = api.connect(target="pkg.jobs:main")
    assert channel is not None
    assert api.connect() is channel
    assert CHANNEL_FD_ENV not in os.environ
    api.heartbeat()
    assert _received(supervisor_end) == [
        Ready(seq=0, pid=os.getpid(), python=sys.version.split()[0], target="pkg.jobs:main"),
        Heartbeat(seq=1),
    ]


def test_failing_task_reports_and_reraises(supervisor_end: socket.socket) -> None:
    """A block that raises sends TaskFinished(ok=False, "Type: message") and re-raises."""
    api.connect()
    with pytest.raises(ValueError, match="boom"), api.task("t1"):
        raise ValueError("boom")
    with api.task("t2"):
        pass
    assert _without_ready(_received(supervisor_end)) == [
        TaskStarted(seq=1, task_id="t1"),
        TaskFinished(seq=2, task_id="t1", ok=False, error="ValueError: boom"),
        TaskStarted(seq=3, task_id="t2"),
        TaskFinished(seq=4, task_id="t2", ok=True),
    ]


def test_task_as_a_decorator_brackets_each_call(supervisor_end: socket.socket) -> None:
    """`task` decorates a function, as a ``contextmanager`` can: each call is one task."""
    api.connect()

    @api.task("shard-7")
    def work(fail: bool) -> str:
        if fail:
            raise ValueError("boom")
        return "done"

    assert work.__name__ == "work"
    assert work(fail=False) == "done"
    with pytest.raises(ValueError, match="boom"):
        work(fail=True)
    assert _without_ready(_received(supervisor_end)) == [
        TaskStarted(seq=1, task_id="shard-7"),
        TaskFinished(seq=2, task_id="shard-7", ok=True),
        TaskStarted(seq=3, task_id="shard-7"),
        TaskFinished(seq=4, task_id="shard-7", ok=False, error="ValueError: boom"),
    ]


def test_emit_and_progress_send_events(supervisor_end: socket.socket) -> None:
    """A user model travels as a UserEvent named after its class; wire events travel as is."""
    api.connect()
    api.emit(Point(x=3, label="p"))
    api.emit(Progress(message="direct"))
    api.progress("halfway", 0.5)
    [user, direct, halfway] = _without_ready(_received(supervisor_end))
    assert (user.kind, user.seq) == ("user", 1)
    assert user.model_dump(include={"name", "data"}) == {
        "name": "Point",
        "data": {"x": 3, "label": "p"},
    }
    assert direct == Progress(seq=2, message="direct")
    assert halfway == Progress(seq=3, message="halfway", fraction=0.5)


def test_oversize_emit_raises(
    supervisor_end: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event over the supervisor's frame limit is the caller's mistake and raises."""
    monkeypatch.setenv(MAX_FRAME_ENV, "256")
    api.connect()
    with pytest.raises(FrameTooLargeError):
        api.emit(Point(x=1, label="x" * 1000))
    api.heartbeat()
    assert _without_ready(_received(supervisor_end)) == [Heartbeat(seq=1)]


def test_lost_supervisor_is_reported_once_and_never_raises(
    supervisor_end: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the supervisor's end is gone, calls keep working; stderr gets a single line."""
    api.connect()
    supervisor_end.close()
    api.heartbeat()
    api.progress("still going")
    with api.task("t1"):
        pass
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("crashsight: the supervisor's end of the channel is gone")


def test_supervisor_gone_before_connect_does_not_break_start_up(
    supervisor_end: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the supervisor is already gone when the runner announces itself, start-up goes on."""
    supervisor_end.close()
    assert api.connect() is not None
    api.heartbeat()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("crashsight: the supervisor's end of the channel is gone")
