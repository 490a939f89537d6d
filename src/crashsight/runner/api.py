"""What code inside a runner calls: `emit`, `heartbeat`, `progress` and `task`.

Workers are instrumented unconditionally, so outside a supervisor every call is a cheap no-op (one
attribute check). Inside one, crashsight's own events (`Ready`, heartbeats, progress, tasks) go out
as plain JSON, checked here against the wire models' rules: a worker that only reports its progress
never imports pydantic and the wire models (about 85 ms and 18 MiB of every worker, measured).
Only `emit` handles models, whose caller has pydantic loaded already. Telemetry must never be what
kills a worker: if the supervisor's end of the channel breaks, the first failed call prints one
line on stderr and later calls do nothing. Only mistakes in the calling code itself raise
(`ChannelClosedError`, `FrameTooLargeError`, and `TypeError` or `ValueError` for a bad argument).
"""

from __future__ import annotations

import os
import sys

from ..errors import ChannelBrokenError, ChannelClosedError, FrameTooLargeError
from ..version import PROTOCOL_VERSION
from .channel import Channel, open_from_environment
from .describe import MAX_TEXT, clip, safe_str, termination_fields

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Literal, ParamSpec, SupportsFloat, TypeVar

    from pydantic import BaseModel

__all__ = [
    "connect",
    "current_channel",
    "emit",
    "heartbeat",
    "progress",
    "send_fields",
    "send_termination",
    "task",
]

if TYPE_CHECKING:
    _R = TypeVar("_R")
    _P = ParamSpec("_P")
_channel: Channel | None = None
_broken_reported = False


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
            send_fields(
                {
                    "kind": "ready",
                    "pid": os.getpid(),
                    "python": sys.version.split()[0],
                    "protocol": PROTOCOL_VERSION,
                    "target": target,
                }
            )
    return _channel


def current_channel() -> Channel | None:
    """The open channel of this process, if it is a supervised runner."""
    return _channel


def send_fields(fields: dict[str, object]) -> None:
    """Send one wire message given as JSON fields (see `Channel.send_fields`), or do nothing
    when unsupervised; a broken channel is reported once, then ignored."""
    if _channel is not None:
        try:
            _channel.send_fields(fields)
        except ChannelBrokenError as exc:
            _report_broken(exc)


def send_termination(exc: BaseException, phase: Literal["bootstrap", "target"]) -> None:
    """Send the `RunnerTerminationError` for ``exc``, the worker's last words.

    Describing an exception should not fail, but a worker may die for want of memory or
    descriptors: then one line says so on stderr, and the supervisor reads Python's traceback
    there instead of a second traceback of crashsight's own chained to the worker's.
    """
    channel = _channel
    if channel is None:
        return
    try:
        fields = termination_fields(exc, phase, channel.max_frame_bytes)
    except Exception as failed:
        print(
            f"crashsight: could not describe the {type(exc).__name__} for the supervisor "
            f"({type(failed).__name__}: {failed}); its traceback follows",
            file=sys.stderr,
        )
        return
    send_fields(fields)


def _report_broken(exc: ChannelBrokenError) -> None:
    global _broken_reported
    if not _broken_reported:
        _broken_reported = True
        print(f"crashsight: {exc}; further events from this worker are dropped", file=sys.stderr)


def emit(event: BaseModel) -> None:
    """Send an event of the user's own (any pydantic model) or a crashsight event to the supervisor.

    A user model travels as `UserEvent` named after its class, with its JSON dump as data; a
    supervisor started with ``user_events=[ThatModel]`` turns it back into the model.

    Raises:
        FrameTooLargeError: The event is larger than the channel's frame limit.
        ChannelClosedError: This process closed the channel.
    """
    channel = _channel
    if channel is None:
        return
    try:  # as in `send_fields`, written out: a helper's call was 0.1 us of a 2 us event
        if _is_message(type(event)):
            channel.send(event)  # type: ignore[arg-type]  # a Message, checked above
        else:
            # The `UserEvent` frame is written straight from the model's own JSON: building a
            # UserEvent would convert the data to Python objects, validate them, and serialise
            # them again, three times the work for the same bytes.
            channel.send_user_event(event)
    except ChannelBrokenError as exc:
        _report_broken(exc)


#: `_is_message`'s answers, by class.
_message_classes: dict[type, bool] = {}


def _is_message(cls: type) -> bool:
    """Whether ``cls`` is one of crashsight's own messages, answered once per class.

    ``isinstance`` against the message types goes through each pydantic metaclass's ABC check:
    0.8 us of an event's 7 (measured), per event, where a cached answer per class costs 0.1.
    """
    answer = _message_classes.get(cls)
    if answer is None:
        # Not imported: a class can only derive from crashsight's messages once they are loaded,
        # and a worker that emits only its own models need not pay for crashsight's.
        protocol = sys.modules.get("crashsight.protocol")
        answer = protocol is not None and issubclass(cls, protocol.MESSAGE_TYPES)
        _message_classes[cls] = answer
    return answer


def heartbeat() -> None:
    """Tell the supervisor this worker is alive, resetting its no-progress watchdog."""
    if _channel is not None:
        send_fields({"kind": "heartbeat"})


def progress(message: str, fraction: SupportsFloat | None = None) -> None:
    """Report human-readable progress, optionally with a completed fraction in [0, 1].

    Raises:
        TypeError: ``message`` is not a string, or ``fraction`` is not a number.
        ValueError: ``fraction`` is outside [0, 1].
    """
    if _channel is not None:
        fields: dict[str, object] = {"kind": "progress", "message": _text("message", message)}
        if fraction is not None:
            fields["fraction"] = _fraction(fraction)
        send_fields(fields)


def _text(name: str, value: str) -> str:
    """``value``, which must be a string as the wire model's field is (nothing is sent if not)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _fraction(value: SupportsFloat) -> float:
    """``value`` as a float in [0, 1]; any number converts (numpy and torch scalars too)."""
    if isinstance(value, str | bytes | bytearray):  # float() would parse these
        raise TypeError(f"fraction must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except TypeError:
        raise TypeError(f"fraction must be a number, not {type(value).__name__}") from None
    if not 0.0 <= number <= 1.0:  # NaN fails both comparisons
        raise ValueError(f"fraction must be in [0, 1], not {number!r}")
    return number


class task:  # lower case: used like a function, ``with runner.task("shard-7"):``
    """Bracket a unit of work with `TaskStarted` and `TaskFinished`.

    If the block raises, `TaskFinished` carries ``ok=False`` and ``Type: message`` of the error, and
    the exception propagates unchanged. If the process dies inside the block, the supervisor reports
    the task in an ErrorChunk. A class rather than ``contextlib.contextmanager``: contextlib (with
    collections and functools) would otherwise load in every worker at start.
    """

    __slots__ = ("_started", "task_id")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._started = False

    def __enter__(self) -> None:
        if _channel is not None:
            send_fields({"kind": "task_started", "task_id": _text("task_id", self.task_id)})
            self._started = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._started:
            return
        if exc is None:
            send_fields({"kind": "task_finished", "task_id": self.task_id, "ok": True})
            return
        text = clip(safe_str(exc), MAX_TEXT)
        summary = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        fields = {"kind": "task_finished", "task_id": self.task_id, "ok": False, "error": summary}
        # The block's own exception matters more than its task's report: the task then shows as
        # in flight. Not contextlib.suppress: contextlib would load in every worker.
        try:  # noqa: SIM105
            send_fields(fields)
        except (ChannelClosedError, FrameTooLargeError):
            pass

    def __call__(self, function: Callable[_P, _R]) -> Callable[_P, _R]:
        """Use as a decorator, as a ``contextmanager`` could be: each call is one task."""
        from functools import wraps  # only for decorator users: see the class docstring

        @wraps(function)
        def bracketed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with task(self.task_id):
                return function(*args, **kwargs)

        return bracketed


def _forget_in_child() -> None:
    global _channel
    if _channel is not None:
        _channel.forget()
        _channel = None
