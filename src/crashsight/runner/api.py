"""What code inside a runner calls: `emit`, `heartbeat`, `progress` and `task`.

Workers are instrumented unconditionally, so outside a supervisor every call is a cheap no-op (one
attribute check). Inside one, telemetry must never be what kills a worker: if the supervisor's end of
the channel breaks, the first failed call prints one line on stderr and later calls do nothing. Only
mistakes in the calling code itself raise (`ChannelClosedError`, `FrameTooLargeError`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel

from ..errors import ChannelBrokenError
from ..protocol import (
    Heartbeat,
    Message,
    Progress,
    Ready,
    RunnerTerminationError,
    TaskFinished,
    TaskStarted,
    UserEvent,
)
from .channel import Channel, open_from_environment

__all__ = ["connect", "current_channel", "emit", "heartbeat", "progress", "send", "task"]

_channel: Channel | None = None
_broken_reported = False
_WIRE_TYPES = (
    Heartbeat,
    Progress,
    Ready,
    RunnerTerminationError,
    TaskFinished,
    TaskStarted,
    UserEvent,
)


def connect(target: str | None = None) -> Channel | None:
    """Open the channel from the environment (once per process) and announce this writer.

    Called by the bootstrap and by the ``.pth`` hook; harmless to call again. Returns None when
    this process is not supervised.
    """
    global _channel
    if _channel is None:
        _channel = open_from_environment()
        if _channel is not None:
            os.register_at_fork(after_in_child=_forget_in_child)
            send(Ready(pid=os.getpid(), python=sys.version.split()[0], target=target))
    return _channel


def current_channel() -> Channel | None:
    """The open channel of this process, if it is a supervised runner."""
    return _channel


def send(message: Message) -> None:
    """Send one wire message, or do nothing when unsupervised or the supervisor is gone."""
    global _broken_reported
    if _channel is None:
        return
    try:
        _channel.send(message)
    except ChannelBrokenError as exc:
        if not _broken_reported:
            _broken_reported = True
            print(
                f"crashsight: {exc}; further events from this worker are dropped", file=sys.stderr
            )


def emit(event: BaseModel) -> None:
    """Send an event of the user's own (any pydantic model) or a crashsight event to the supervisor.

    A user model travels as `UserEvent` named after its class, with its JSON dump as data; a
    supervisor started with ``user_events=[ThatModel]`` turns it back into the model.

    Raises:
        FrameTooLargeError: The event is larger than the channel's frame limit.
        ChannelClosedError: This process closed the channel.
    """
    if _channel is None:
        return
    if isinstance(event, _WIRE_TYPES):
        send(event)
    else:
        send(UserEvent(name=type(event).__name__, data=event.model_dump(mode="json")))


def heartbeat() -> None:
    """Tell the supervisor this worker is alive, resetting its no-progress watchdog."""
    if _channel is not None:
        send(Heartbeat())


def progress(message: str, fraction: float | None = None) -> None:
    """Report human-readable progress, optionally with a completed fraction in [0, 1]."""
    if _channel is not None:
        send(Progress(message=message, fraction=fraction))


@contextmanager
def task(task_id: str) -> Iterator[None]:
    """Bracket a unit of work with `TaskStarted` and `TaskFinished`.

    If the block raises, `TaskFinished` carries ``ok=False`` and ``Type: message`` of the error, and
    the exception propagates unchanged. If the process dies inside the block, the supervisor reports
    the task in an ErrorChunk.
    """
    if _channel is None:
        yield
        return
    send(TaskStarted(task_id=task_id))
    try:
        yield
    except BaseException as exc:
        summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        send(TaskFinished(task_id=task_id, ok=False, error=summary))
        raise
    send(TaskFinished(task_id=task_id, ok=True))


def _forget_in_child() -> None:
    global _channel
    if _channel is not None:
        _channel.forget()
        _channel = None
