"""The calls workers make: no-ops when unsupervised, the right messages when supervised."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from tests.strategies import TEXTS

from crashsight.errors import FrameTooLargeError, ProtocolError
from crashsight.framing import FrameDecoder, UserModelEvent
from crashsight.protocol import Heartbeat, Message, Progress, Ready, TaskFinished, TaskStarted
from crashsight.runner import api
from crashsight.runner.channel import CHANNEL_FD_ENV, MAX_FRAME_ENV, Channel
from crashsight.runner.describe import MAX_TEXT

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
    items = _decoded(supervisor_end)
    messages = [item for item in items if not isinstance(item, ProtocolError | UserModelEvent)]
    assert messages == items, "the channel carried something that is not a clean frame"
    return messages


def _decoded(supervisor_end: socket.socket) -> list[Decoded]:
    """Everything ``supervisor_end`` receives until end-of-stream, decoded."""
    supervisor_end.settimeout(10)
    decoder = FrameDecoder()
    items: list[Decoded] = []
    while data := supervisor_end.recv(65536):
        items += decoder.feed(data)
    return items + decoder.close()


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


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


def test_an_exception_that_cannot_be_printed_still_propagates(
    supervisor_end: socket.socket,
) -> None:
    """A block's exception whose ``__str__`` raises reaches the caller unchanged; the task is
    reported failed, saying so."""
    api.connect()
    with pytest.raises(_Unprintable), api.task("t1"):
        raise _Unprintable
    assert _without_ready(_received(supervisor_end)) == [
        TaskStarted(seq=1, task_id="t1"),
        TaskFinished(
            seq=2, task_id="t1", ok=False, error="_Unprintable: <str() failed: RuntimeError>"
        ),
    ]


def test_a_huge_exception_message_is_clipped_and_never_replaces_the_exception(
    supervisor_end: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary is clipped as a termination error's message is; a frame limit smaller still
    loses the task's report (it then shows as in flight), never the block's own exception."""
    channel = api.connect()
    assert channel is not None
    with pytest.raises(ValueError, match=r"^x+$"), api.task("t1"):
        raise ValueError("x" * 100_000)
    monkeypatch.setattr(channel, "max_frame_bytes", 256)
    with pytest.raises(ValueError, match=r"^y+$"), api.task("t2"):
        raise ValueError("y" * 1000)
    [started, finished, started_again] = _without_ready(_received(supervisor_end))
    assert isinstance(finished, TaskFinished)
    assert finished.error is not None
    assert finished.error.startswith("ValueError: xxx")
    assert finished.error.endswith(f"[{100_000 - MAX_TEXT} more characters]")
    assert (started, started_again) == (
        TaskStarted(seq=1, task_id="t1"),
        TaskStarted(seq=3, task_id="t2"),
    )


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


def test_progress_takes_any_number_and_sends_a_float(supervisor_end: socket.socket) -> None:
    """A fraction is any real number, converted by ``float()`` (an int and a Fraction here; numpy
    and torch scalars convert the same way)."""
    api.connect()
    api.progress("none")
    api.progress("int", 1)
    api.progress("ratio", Fraction(1, 4))
    assert _without_ready(_received(supervisor_end)) == [
        Progress(seq=1, message="none"),
        Progress(seq=2, message="int", fraction=1.0),
        Progress(seq=3, message="ratio", fraction=0.25),
    ]


def _enter_task(task_id: str) -> None:
    api.task(task_id).__enter__()


@pytest.mark.parametrize(
    ("call", "args", "error", "match"),
    [
        pytest.param(api.progress, ("p", 1.5), ValueError, r"\[0, 1\], not 1.5", id="over"),
        pytest.param(api.progress, ("p", -0.1), ValueError, "not -0.1", id="under"),
        pytest.param(api.progress, ("p", math.nan), ValueError, "not nan", id="nan"),
        pytest.param(api.progress, ("p", "0.5"), TypeError, "number, not str", id="text"),
        pytest.param(api.progress, ("p", [0.5]), TypeError, "number, not list", id="list"),
        pytest.param(api.progress, (7,), TypeError, "message must be a str, not int", id="msg"),
        pytest.param(_enter_task, (7,), TypeError, "task_id must be a str, not int", id="task"),
    ],
)
def test_a_bad_argument_raises_and_sends_nothing(
    supervisor_end: socket.socket,
    call: Callable[..., None],
    args: tuple[object, ...],
    error: type[Exception],
    match: str,
) -> None:
    """The wire models' rules are checked in the worker, where the mistake is: the supervisor
    would only see a frame it must refuse."""
    api.connect()
    with pytest.raises(error, match=match):
        call(*args)
    api.heartbeat()
    assert _without_ready(_received(supervisor_end)) == [Heartbeat(seq=1)]


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=TEXTS, fraction=st.none() | st.floats(0, 1), task_id=TEXTS, error=TEXTS)
def test_own_events_decode_as_their_models(
    message: str, fraction: float | None, task_id: str, error: str
) -> None:
    """Written without pydantic, any text (undecodable file names included) arrives as the models
    pydantic would have written, with lone surrogates as Python prints them."""
    runner_end, supervisor_end = socket.socketpair()
    with supervisor_end:
        api._channel = Channel(runner_end)
        try:
            api.progress(message, fraction)
            with contextlib.suppress(RuntimeError), api.task(task_id):
                raise RuntimeError(error)
        finally:
            api._channel.close()
            api._channel = None
        messages = _decoded(supervisor_end)

    def sent(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode()

    summary = f"RuntimeError: {sent(error)}" if error else "RuntimeError"
    assert messages == [
        Progress(seq=0, message=sent(message), fraction=fraction),
        TaskStarted(seq=1, task_id=sent(task_id)),
        TaskFinished(seq=2, task_id=sent(task_id), ok=False, error=summary),
    ]


#: A worker sending every event of its own kind; it prints which modules of ``HEAVY`` it loaded.
REPORTS_ONLY = """
import os, socket, sys
from crashsight import runner
from crashsight.runner.api import connect, current_channel

ours, theirs = socket.socketpair()
os.environ["CRASHSIGHT_CHANNEL_FD"] = str(theirs.detach())
connect("worker:main")
runner.heartbeat()
runner.progress("halfway", 0.5)
with runner.task("t1"):
    pass
try:
    with runner.task("t2"):
        1 / 0
except ZeroDivisionError:
    pass
print(",".join(m for m in ("pydantic", "crashsight.protocol") if m in sys.modules), flush=True)

from pydantic import BaseModel

class Checkpoint(BaseModel):
    step: int

runner.emit(Checkpoint(step=7))
print(",".join(m for m in ("pydantic", "crashsight.protocol") if m in sys.modules), flush=True)
current_channel().close()
sys.stdout.buffer.write(ours.recv(65536))
"""


def test_a_worker_that_reports_progress_never_imports_pydantic(tmp_path: Path) -> None:
    """Heartbeats, progress and tasks are written as plain JSON: a worker that sends only those
    does not pay for pydantic and the wire models (about 85 ms and 18 MiB, measured). One that
    emits its own models loads pydantic, but still not crashsight's models."""
    (tmp_path / "worker.py").write_text(REPORTS_ONLY)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "worker.py")], capture_output=True, check=True, timeout=60
    )
    reporting, emitting, frames = done.stdout.split(b"\n", 2)
    assert (reporting, emitting) == (b"", b"pydantic")
    decoder = FrameDecoder()
    assert [type(m).__name__ for m in [*decoder.feed(frames), *decoder.close()]] == [
        "Ready", "Heartbeat", "Progress", "TaskStarted", "TaskFinished", "TaskStarted",
        "TaskFinished", "UserEvent",
    ]  # fmt: skip


class FileDone(BaseModel):
    """A user's event naming a file."""

    path: str


def test_a_user_event_holding_an_undecodable_file_name_arrives(
    supervisor_end: socket.socket,
) -> None:
    """pydantic refuses to write a lone surrogate as JSON; the event goes out with the name as
    Python prints it, instead of raising out of ``emit``."""
    api.connect()
    api.emit(FileDone(path=os.fsdecode(b"shard-\xff.bin")))
    [event] = _without_ready(_received(supervisor_end))
    assert event.model_dump(include={"name", "data"}) == {
        "name": "FileDone",
        "data": {"path": "shard-\\udcff.bin"},
    }


def test_a_user_event_that_cannot_be_serialised_still_raises(
    supervisor_end: socket.socket,
) -> None:
    """Only lone surrogates are written another way: a model pydantic cannot serialise for any
    other reason is the caller's mistake, and raises as ``model_dump_json`` would."""

    class Opaque(BaseModel):
        model_config = {"arbitrary_types_allowed": True}
        thing: object

    api.connect()
    with pytest.raises(ValueError, match="Unable to serialize"):
        api.emit(Opaque(thing=object()))
    api.heartbeat()
    assert _without_ready(_received(supervisor_end)) == [Heartbeat(seq=1)]


def test_a_description_that_fails_is_one_line_on_stderr(
    supervisor_end: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If the last words cannot be described (no memory left), nothing is sent, nothing raises,
    and stderr says so in one line: the supervisor reads Python's traceback there instead."""

    def no_memory(*args: object) -> NoReturn:
        raise MemoryError

    api.connect()
    monkeypatch.setattr(api, "termination_fields", no_memory)
    api.send_termination(ValueError("bad shard"), "target")
    assert _without_ready(_received(supervisor_end)) == []
    assert capsys.readouterr().err == (
        "crashsight: could not describe the ValueError for the supervisor (MemoryError: ); "
        "its traceback follows\n"
    )


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
