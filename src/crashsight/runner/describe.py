"""Turn a live exception into an `ExceptionInfo` that outlives the process that raised it.

Everything is bounded (chain depth, group width, frames, text) so that a pathological exception,
such as a RecursionError with a thousand frames or a message of many megabytes, still fits in one
channel frame and never makes the report itself fail.
"""

from __future__ import annotations

import errno as errno_module
import traceback
from typing import Literal

from ..framing import encode_frame
from ..protocol import ExceptionInfo, FrameInfo, RunnerTerminationError

__all__ = ["describe_exception", "termination_error"]

_MAX_DEPTH = 8
_MAX_GROUP_MEMBERS = 16
_MAX_FRAMES = 64
_MAX_TEXT = 16 * 1024


def describe_exception(exc: BaseException, *, max_frames: int = _MAX_FRAMES) -> ExceptionInfo:
    """Describe ``exc`` with its frames, notes, chain and group members.

    Args:
        exc: The exception, usually just caught.
        max_frames: Frames kept per exception; the innermost half and outermost half survive.
    """
    return _describe(exc, max_frames, depth=0, seen=set())


def termination_error(
    exc: BaseException, phase: Literal["bootstrap", "target"], max_frame_bytes: int
) -> RunnerTerminationError:
    """Build the message the bootstrap sends before exiting, shrunk until it fits one frame."""
    for max_frames in (_MAX_FRAMES, 16, 4, 0):
        info = describe_exception(exc, max_frames=max_frames)
        message = RunnerTerminationError(phase=phase, **_fields(info))
        if len(encode_frame(message)) <= max_frame_bytes:
            return message
    # Clipping counts characters, not encoded bytes ("\x00" escapes to six), so halve until it fits.
    limit = max(0, max_frame_bytes // 4)
    while True:
        bare = RunnerTerminationError(
            phase=phase,
            type=type(exc).__qualname__,
            module=type(exc).__module__,
            message=_clip(_safe_str(exc), limit),
        )
        if limit == 0 or len(encode_frame(bare)) <= max_frame_bytes:
            return bare
        limit //= 2


def _fields(info: ExceptionInfo) -> dict[str, object]:
    return {name: getattr(info, name) for name in ExceptionInfo.model_fields}


def _describe(exc: BaseException, max_frames: int, depth: int, seen: set[int]) -> ExceptionInfo:
    seen.add(id(exc))
    cls = type(exc)
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    info = ExceptionInfo(
        type=cls.__qualname__,
        module=cls.__module__,
        mro_names=[_qualified(c) for c in cls.__mro__ if c is not object],
        message=_clip(_safe_str(exc), _MAX_TEXT),
        repr=_clip(_safe_repr(exc), _MAX_TEXT // 4),
        errno=code if isinstance(code, int) else None,
        errno_name=errno_module.errorcode.get(code) if isinstance(code, int) else None,
        frames=_frames(exc, max_frames),
        notes=[_clip(str(n), _MAX_TEXT // 4) for n in getattr(exc, "__notes__", ())][:16],
    )
    if depth >= _MAX_DEPTH:
        return info

    def linked(other: BaseException | None) -> ExceptionInfo | None:
        if other is None or id(other) in seen:
            return None
        return _describe(other, max_frames, depth + 1, seen)

    info.cause = linked(exc.__cause__)
    if not exc.__suppress_context__:
        info.context = linked(exc.__context__)
    if isinstance(exc, BaseExceptionGroup):
        members = [linked(e) for e in exc.exceptions[:_MAX_GROUP_MEMBERS]]
        info.exceptions = [m for m in members if m is not None]
    return info


def _frames(exc: BaseException, max_frames: int) -> list[FrameInfo]:
    summary = traceback.extract_tb(exc.__traceback__)
    frames = [
        FrameInfo(file=f.filename, line=f.lineno, function=f.name, code=f.line or None)
        for f in summary
    ]
    if len(frames) <= max_frames:
        return frames
    head = max_frames // 2
    return frames[:head] + frames[len(frames) - (max_frames - head) :]


def _qualified(cls: type) -> str:
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as err:  # a broken __str__ must not hide the original failure
        return f"<str() failed: {type(err).__name__}>"


def _safe_repr(exc: BaseException) -> str:
    try:
        return repr(exc)
    except Exception as err:
        return f"<repr() failed: {type(err).__name__}>"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"
