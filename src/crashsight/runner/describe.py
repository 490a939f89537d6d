"""Turn a live exception into a description that outlives the process that raised it.

The description is built as plain JSON fields with the standard library only, in the shape of
`ExceptionInfo`: the runner reports a failure without importing pydantic, which matters most when
the failure is a MemoryError and there is no memory left to import it. Tests validate every
description through the model, so the two cannot drift.

Everything is bounded (chain depth, group width, frames, text) so that a pathological exception,
such as a RecursionError with a thousand frames or a message of many megabytes, still fits in one
channel frame and never makes the report itself fail.
"""

from __future__ import annotations

import errno as errno_module

from ..framing import encode_json_frame

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from typing import Literal

    from ..protocol import ExceptionInfo, RunnerTerminationError

__all__ = [
    "MAX_TEXT",
    "clip",
    "describe_exception",
    "exception_fields",
    "safe_str",
    "termination_error",
    "termination_fields",
]

_MAX_DEPTH = 8
_MAX_GROUP_MEMBERS = 16
_MAX_FRAMES = 64
MAX_TEXT = 16 * 1024
#: Attributes through which exceptions describe a child process that died, kept verbatim (ints)
#: or as text: subprocess.CalledProcessError (``returncode``, ``cmd``, and ``stderr`` when it was
#: captured, which is where the child's own error is), torch.multiprocessing's ProcessException
#: (``error_pid``, ``exit_code``, ``signal_name``).
_CHILD_ATTRIBUTES = ("returncode", "cmd", "stderr", "error_pid", "exit_code", "signal_name")
_MAX_ATTRIBUTE = 4 * 1024  # of a captured stderr, the end is kept: that is where the error is

Fields = dict[str, object]


def exception_fields(exc: BaseException, *, max_frames: int = _MAX_FRAMES) -> Fields:
    """Describe ``exc`` with its frames, notes, chain and group members, as `ExceptionInfo` fields.

    Args:
        exc: The exception, usually just caught.
        max_frames: Frames kept per exception; the innermost half and outermost half survive.
    """
    return _describe(exc, max_frames, depth=0, seen=set())


def describe_exception(exc: BaseException, *, max_frames: int = _MAX_FRAMES) -> ExceptionInfo:
    """`exception_fields` as an `ExceptionInfo` model (imports pydantic)."""
    from ..protocol import ExceptionInfo

    return ExceptionInfo.model_validate(exception_fields(exc, max_frames=max_frames))


def termination_fields(
    exc: BaseException, phase: Literal["bootstrap", "target"], max_frame_bytes: int
) -> Fields:
    """The `RunnerTerminationError` the bootstrap sends before exiting, shrunk to fit one frame."""
    for max_frames in (_MAX_FRAMES, 16, 4, 0):
        fields = {
            "kind": "termination_error",
            "phase": phase,
            **exception_fields(exc, max_frames=max_frames),
        }
        if _fits(fields, max_frame_bytes):
            return fields
    # Clipping counts characters, not encoded bytes ("\x00" escapes to six), so halve until it fits.
    limit = max(0, max_frame_bytes // 4)
    text = safe_str(exc)  # once: it may be megabytes, built while memory is short
    while True:
        bare: Fields = {
            "kind": "termination_error",
            "phase": phase,
            "type": type(exc).__qualname__,
            "module": type(exc).__module__,
            "message": clip(text, limit),
        }
        if limit == 0 or _fits(bare, max_frame_bytes):
            return bare
        limit //= 2


def termination_error(
    exc: BaseException, phase: Literal["bootstrap", "target"], max_frame_bytes: int
) -> RunnerTerminationError:
    """`termination_fields` as a `RunnerTerminationError` model (imports pydantic)."""
    from ..protocol import RunnerTerminationError

    return RunnerTerminationError.model_validate(termination_fields(exc, phase, max_frame_bytes))


def _fits(fields: Fields, max_frame_bytes: int) -> bool:
    # The channel adds "seq"; a generous 24 bytes cover it.
    return len(encode_json_frame(fields)) + 24 <= max_frame_bytes


def _describe(exc: BaseException, max_frames: int, depth: int, seen: set[int]) -> Fields:
    seen.add(id(exc))
    cls = type(exc)
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    info: Fields = {
        "type": cls.__qualname__,
        "module": cls.__module__,
        "mro_names": [_qualified(c) for c in cls.__mro__ if c is not object],
        "message": clip(safe_str(exc), MAX_TEXT),
        "repr": clip(_safe_repr(exc), MAX_TEXT // 4),
        "errno": code if isinstance(code, int) else None,
        "errno_name": errno_module.errorcode.get(code) if isinstance(code, int) else None,
        "frames": _frames(exc, max_frames),
        "notes": [clip(str(n), MAX_TEXT // 4) for n in getattr(exc, "__notes__", ())][:16],
    }
    attributes = _child_attributes(exc)
    if attributes:
        info["attributes"] = attributes
    if depth >= _MAX_DEPTH:
        return info

    def linked(other: BaseException | None) -> Fields | None:
        if other is None or id(other) in seen:
            return None
        return _describe(other, max_frames, depth + 1, seen)

    info["cause"] = linked(exc.__cause__)
    if not exc.__suppress_context__:
        info["context"] = linked(exc.__context__)
    if isinstance(exc, BaseExceptionGroup):
        members = [linked(e) for e in exc.exceptions[:_MAX_GROUP_MEMBERS]]
        info["exceptions"] = [m for m in members if m is not None]
    return info


def _child_attributes(exc: BaseException) -> dict[str, object]:
    """The `_CHILD_ATTRIBUTES` that ``exc`` has, as ints or bounded text."""
    found: dict[str, object] = {}
    for name in _CHILD_ATTRIBUTES:
        try:
            value = getattr(exc, name, None)
        except Exception:  # a property that fails must not hide the original failure
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            found[name] = value
        elif isinstance(value, bytes | str) and value:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            found[name] = text[-_MAX_ATTRIBUTE:]
        elif isinstance(value, list | tuple) and value:
            found[name] = clip(repr([str(part) for part in value]), _MAX_ATTRIBUTE)
    return found


def _frames(exc: BaseException, max_frames: int) -> list[dict[str, object]]:
    """The traceback's frames, outermost first, as ``traceback.extract_tb`` lists them.

    Walked by hand rather than with ``traceback``: a worker that dies of "Too many open files"
    cannot open ``traceback.py`` to import it, and its last words were lost that way. Source
    lines are read only for the frames kept, and left out where no file can be opened.
    """
    found: list[tuple[str, int | None, str]] = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        found.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    if len(found) > max_frames:
        head = max_frames // 2
        found = found[:head] + found[len(found) - (max_frames - head) :]
    return [
        {"file": file, "line": line, "function": function, "code": _source_line(file, line)}
        for file, line, function in found
    ]


def _source_line(file: str, line: int | None) -> str | None:
    try:
        import linecache  # here, not at the top: only a failing worker pays for it
    except (ImportError, OSError, MemoryError):  # out of descriptors or memory: no source
        return None
    return (linecache.getline(file, line).strip() or None) if line else None


def _qualified(cls: type) -> str:
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a note of why it failed: a broken ``__str__`` must not hide the failure."""
    try:
        return str(exc)
    except Exception as err:
        return f"<str() failed: {type(err).__name__}>"


def _safe_repr(exc: BaseException) -> str:
    try:
        return repr(exc)
    except Exception as err:
        return f"<repr() failed: {type(err).__name__}>"


def clip(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with a note of how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"
