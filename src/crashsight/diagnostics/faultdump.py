"""CPython's faulthandler dumps, read back from stderr text.

When a Python process dies of a fatal signal (or is asked for its stacks), faulthandler writes
``Fatal Python error: Segmentation fault`` followed by one block of frames per thread, innermost
first. `parse_faulthandler` turns the last such dump into a `FaultDump`; `continues_dump` tells a
streaming reader whether a line still belongs to one. Everything here is best effort and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from crashsight.protocol import ExceptionInfo, FrameInfo

__all__ = [
    "FATAL_LINE",
    "FaultDump",
    "continues_dump",
    "parse_faulthandler",
    "strip_prefix",
]

#: The first line of a faulthandler dump.
FATAL_LINE = re.compile(r"Fatal Python error: (?P<error>.*)$")
_THREAD = re.compile(
    r"^(?:(?P<current>Current thread 0x|Stack)|Thread 0x)[^()]*\(most recent call first\):\s*$"
)
_FAULT_FRAME = re.compile(
    r'^  File (?:"(?P<file>.*)"|\?\?\?), line (?P<line>\d+|\?\?\?) in (?P<function>.*)$'
)
_FAULT_EXTRA = re.compile(
    r"^(?:Extension modules: |Python runtime state: |\.\.\.$|Current thread's C )"
)
# faulthandler's names of the fatal signals it handles (Modules/faulthandler.c).
_SIGNALS = {"Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT", "Bus error": "SIGBUS"}
_SIGNALS |= {"Illegal instruction": "SIGILL", "Floating point exception": "SIGFPE"}


class FaultDump(BaseModel):
    """What CPython's faulthandler printed when the process received a fatal signal.

    Frames are innermost last, like a traceback's, although faulthandler prints them the other way.
    """

    model_config = ConfigDict(extra="forbid")

    fatal_error: str = Field(
        description="Text after 'Fatal Python error: ', e.g. 'Segmentation fault'."
    )
    current_thread: list[FrameInfo] = Field(default_factory=list)
    other_threads: list[list[FrameInfo]] = Field(default_factory=list)

    def to_exception_info(self) -> ExceptionInfo:
        """Describe the fault as an exception typed by its signal (``SIGSEGV``), for the rules."""
        kind = _SIGNALS.get(self.fatal_error, "FatalError")
        return ExceptionInfo(
            type=kind,
            module="faulthandler",
            mro_names=[kind],
            message=self.fatal_error,
            frames=list(self.current_thread),
        )


def parse_faulthandler(lines: Sequence[str]) -> FaultDump | None:
    """Parse the last faulthandler dump (``Fatal Python error: ...``) in ``lines``.

    Returns:
        The dump, or None when there is none.
    """
    for index in range(len(lines) - 1, -1, -1):
        match = FATAL_LINE.search(lines[index])
        if match is not None:
            prefix = lines[index][: match.start()]
            return _parse_fault([strip_prefix(line, prefix) for line in lines[index + 1 :]], match)
    return None


def continues_dump(text: str) -> bool:
    """Whether ``text`` (prefix removed) can continue a faulthandler dump."""
    extra = _THREAD.match(text) or _FAULT_EXTRA.match(text)
    return not text.strip() or text.startswith(" ") or extra is not None


def strip_prefix(line: str, prefix: str) -> str:
    """``line`` without ``prefix`` (a rank or log prefix) when it starts with it."""
    return line[len(prefix) :] if prefix and line.startswith(prefix) else line


def _parse_fault(lines: list[str], fatal: re.Match[str]) -> FaultDump:
    """Collect the per-thread frame lists that follow a ``Fatal Python error`` line."""
    current: list[FrameInfo] = []
    others: list[list[FrameInfo]] = []
    frames: list[FrameInfo] | None = None
    for line in lines:
        thread = _THREAD.match(line)
        frame = _FAULT_FRAME.match(line)
        if thread:
            frames = []
            if thread["current"]:
                current = frames
            else:
                others.append(frames)
        elif frame and frames is not None:
            number = int(frame["line"]) if frame["line"].isdigit() else None
            frames.insert(0, FrameInfo(file=frame["file"] or "???", line=number, function=frame[3]))
        elif line.strip() and not line.startswith(" ") and not _FAULT_EXTRA.match(line):
            break
    return FaultDump(
        fatal_error=fatal["error"].strip(), current_thread=current, other_threads=others
    )
