"""An `ExceptionInfo` as the text Python itself prints for an uncaught exception.

Two readers want that text rather than crashsight's own rendering: a training UI that shows the
raw traceback (`crashsight.server.training`) and torchrun, which prints a rank's ``py_callstack``
in its failure summary (`crashsight.report.torchelastic`). Both get it from here, so a frame
without a line number, a chained cause or an exception's notes read the same everywhere.
"""

from __future__ import annotations

from ..protocol import ExceptionInfo

__all__ = ["python_traceback"]

#: Deeper cause/context chains are cut: Python's own printer stops at a cycle, and a chain this
#: long says nothing the innermost exceptions do not.
_MAX_CHAIN = 32

_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"


def python_traceback(exception: ExceptionInfo, max_frames: int | None = None) -> list[str]:
    """The lines Python prints for ``exception``: its cause or context first, then itself.

    Args:
        exception: The exception, with its chain.
        max_frames: Keep only the innermost frames of each exception, saying how many were
            left out (torchrun prints the whole callstack into a terminal).
    """
    return _lines(exception, max_frames, 0)


def _lines(exception: ExceptionInfo, max_frames: int | None, depth: int) -> list[str]:
    lines: list[str] = []
    if depth < _MAX_CHAIN and exception.cause is not None:
        lines += [*_lines(exception.cause, max_frames, depth + 1), "", _CAUSE, ""]
    elif depth < _MAX_CHAIN and exception.context is not None:
        lines += [*_lines(exception.context, max_frames, depth + 1), "", _CONTEXT, ""]
    frames = exception.frames if max_frames is None else exception.frames[-max_frames:]
    if exception.frames:
        lines.append("Traceback (most recent call last):")
    if len(exception.frames) > len(frames):
        lines.append(f"  ... {len(exception.frames) - len(frames)} earlier frames")
    for frame in frames:
        where = f", line {frame.line}" if frame.line is not None else ""
        lines.append(f'  File "{frame.file}"{where}, in {frame.function}')
        if frame.code:
            lines.append(f"    {frame.code}")
    message = f": {exception.message}" if exception.message else ""
    return [*lines, f"{_printed_name(exception)}{message}", *exception.notes]


def _printed_name(exception: ExceptionInfo) -> str:
    """The class name as Python prints it: qualified unless built in or from ``__main__``."""
    if exception.module in ("", "builtins", "__main__") or "." in exception.type:
        return exception.type
    return f"{exception.module}.{exception.type}"
