"""Recover why a Python process died from its stderr text: tracebacks and faulthandler dumps.

Programs started through crashsight's bootstrap send their termination error over the channel. Any
other program only leaves text behind, so this module reads it back: `parse_traceback` turns the
last traceback (with its ``raise ... from`` chain and exception groups) into an `ExceptionInfo`,
`parse_faulthandler` turns CPython's fatal-signal dump into a `FaultDump`, and `TracebackCapture`
is a collector line sink that keeps just enough lines to do either after the process is gone.

Text is ambiguous, so everything here is best effort and never raises: a message line and a
``__notes__`` line look the same, so lines after the message are taken as part of it except where
Python's output tells them apart (an exception with no message, a quoted ``KeyError`` key, an
exception group's ``(N sub-exceptions)`` suffix).
"""

from __future__ import annotations

import builtins
import errno
import re
from collections import deque
from collections.abc import Sequence

from crashsight.protocol import ExceptionInfo, FrameInfo

from .faultdump import FATAL_LINE, FaultDump, continues_dump, parse_faulthandler, strip_prefix

__all__ = ["TracebackCapture", "parse_traceback"]

_HEADER = re.compile(
    r"(?:  \+ Exception Group |Exception Group )?Traceback \(most recent call last\):\s*$"
)
_CHAIN = {
    "The above exception was the direct cause of the following exception:": "cause",
    "During handling of the above exception, another exception occurred:": "context",
}
_FRAME = re.compile(r'^  File "(?P<file>.*)", line (?P<line>\d+), in (?P<function>.*)$')
_REPEAT = re.compile(r"^  \[Previous line repeated (\d+) more times?\]$")
_CARETS = re.compile(r"^\s*[~^]+\s*$")
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.<>]*)(?::(?: (?P<message>.*))?)?$")
_ERRNO = re.compile(r"^\[Errno (\d+)\] ")
_SUB_EXCEPTIONS = re.compile(r"\(\d+ sub-exceptions?\)$")
_GROUP_FIRST = re.compile(r"^\+-\+-+ (?:\d+|\.\.\.) -+$")
_GROUP_NEXT = re.compile(r"^  \+-+ (?:\d+|\.\.\.) -+$")
_GROUP_END = re.compile(r"^  \+-+$")
# Lines that end a message: log records, and the box of an exception group printed right after.
_LOG_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d|\[\w|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\b|  (?:\| |\+-))"
)
_MAX_REPEAT = 10_000  # "[Previous line repeated N more times]" is expanded, but not without bound
_MAX_DEPTH = 32  # nested exception groups parsed recursively; deeper ones are left out


def parse_traceback(lines: Sequence[str]) -> ExceptionInfo | None:
    """Parse the last Python traceback in ``lines``, with its chain and exception-group members.

    A log prefix before ``Traceback`` (``[rank3]: ``, a timestamp) is tolerated. When the line after
    the header carries it too, only lines with that prefix are read, so the interleaved output of
    other processes is skipped; otherwise it is taken to be on the header line only.

    Returns:
        The final (outermost) exception, or None when there is no complete traceback.
    """
    for index in range(len(lines) - 1, -1, -1):
        match = _HEADER.search(lines[index])
        if match is None:
            continue
        prefix = lines[index][: match.start()]
        if prefix.rstrip().endswith("|"):
            continue  # a traceback inside an exception group's box, not a top-level one
        if prefix and _prefix_is_consistent(prefix, lines[index + 1 : index + 50]):
            # A consistent prefix: lines without it come from another source (another rank).
            kept = [i for i, line in enumerate(lines) if line.startswith(prefix)]
            index = kept.index(index)
            body = [lines[i][len(prefix) :] for i in kept]
        else:
            body = list(lines)
        body[index] = match.group()
        return _parse_chain(body, index, 0)
    return None


class TracebackCapture:
    """A collector line sink that keeps the last traceback and the last faulthandler dump.

    It holds no more than two blocks of at most ``max_lines`` lines and ``max_bytes`` bytes each; a
    longer block keeps its head and its tail. So a traceback followed by megabytes of other output,
    or a 10,000-frame one, is still recovered after the process is gone.

    Args:
        max_lines: Line budget of one block.
        max_bytes: Byte budget of one block.
    """

    #: The collector feeds this sink only from a line holding one of these, while it is not active.
    triggers = ("Traceback (most recent call last):", "Fatal Python error: ")
    _MAX_CONTINUATION = 50  # message lines kept after the exception line before giving up
    _MAX_IGNORED = 10_000  # other sources' lines skipped before a prefixed traceback is given up

    def __init__(self, *, max_lines: int = 2000, max_bytes: int = 256 * 1024) -> None:
        self._max_lines, self._max_bytes = max_lines, max_bytes
        self._open: _Block | None = None
        self._state = ""  # "frames", "message", "gap", "chain", or "" when outside a traceback
        self._continuation = 0
        self._complete: _Block | None = None
        self._fault: _Block | None = None
        self._fault_open = False
        self._order = 0  # which came last: the traceback (1) or the fault dump (2)
        self._ignored = 0

    @property
    def active(self) -> bool:
        """Whether it is inside a traceback or dump; until then only trigger lines matter to it."""
        return bool(self._state) or self._fault_open

    def __call__(self, line: str) -> None:
        """Consume one line of stderr."""
        if self._fault_open and self._fault is not None:
            if self._fault.belongs(line):
                self._fault.add(line)
            else:
                self._fault_open = False
        if "Fatal Python error: " in line and FATAL_LINE.search(line):
            self._fault = _Block(self._max_lines, self._max_bytes, FATAL_LINE.split(line, 1)[0])
            self._fault.add(line)
            self._fault_open, self._order = True, 2
        self._feed_traceback(line)

    def result(self) -> ExceptionInfo | None:
        """The exception that ended the process: whichever of traceback and fault dump came last."""
        traceback = None
        for block in (self._open, self._complete):
            traceback = traceback or (parse_traceback(block.lines()) if block else None)
        dump = self.fault_dump()
        if dump is not None and (self._order == 2 or traceback is None):
            return dump.to_exception_info()
        return traceback

    def fault_dump(self) -> FaultDump | None:
        """The last faulthandler dump seen, if any."""
        return parse_faulthandler(self._fault.lines()) if self._fault else None

    def _feed_traceback(self, line: str) -> None:
        header = _HEADER.search(line) if "Traceback (most" in line else None
        if header is not None and not line[: header.start()].rstrip().endswith("|"):
            if self._state != "chain" or self._open is None:
                self._open = _Block(self._max_lines, self._max_bytes, line[: header.start()])
            self._open.add(line)
            self._state, self._order = "frames", 1
            return
        if not self._state or self._open is None:
            return
        block = self._open
        if block.prefix and not line.startswith(block.prefix):
            if block.confirmed or _prefix_is_consistent(block.prefix, [line]) is not False:
                # Another source's line, interleaved with this prefixed traceback.
                self._ignored += 1
                if self._ignored > self._MAX_IGNORED:
                    self._state = ""
                return
            block.prefix = ""  # only the header line carried it (e.g. a logging timestamp)
        block.confirmed, self._ignored = True, 0
        text = strip_prefix(line, block.prefix)
        blank = not text.strip()
        if self._state == "frames" and (text.startswith(" ") or blank):
            self._open.add(line)
        elif self._state == "frames":
            self._open.add(line)
            self._state, self._continuation = "message", 0
            self._complete = self._open
        elif text in _CHAIN:
            self._open.add(line)
            self._state = "chain"
        elif blank:
            self._open.add(line)
            self._state = "chain" if self._state == "chain" else "gap"
        elif self._state == "message" and self._continuation < self._MAX_CONTINUATION:
            self._open.add(line)
            self._continuation += 1
        else:
            self._state = ""


class _Block:
    """A bounded run of lines: the head is kept, then a rolling tail."""

    def __init__(self, max_lines: int, max_bytes: int, prefix: str) -> None:
        self.prefix = prefix
        self.confirmed = False  # whether the line after the header told if the prefix repeats
        self._half_lines = max(1, max_lines // 2)
        self._half_bytes = max(1, max_bytes // 2)
        self._head: list[str] = []
        self._head_bytes = 0
        self._tail: deque[str] = deque()
        self._tail_bytes = 0

    def add(self, line: str) -> None:
        line = line[: self._half_bytes]
        if len(self._head) < self._half_lines and self._head_bytes + len(line) <= self._half_bytes:
            self._head.append(line)
            self._head_bytes += len(line)
            return
        self._tail.append(line)
        self._tail_bytes += len(line)
        while len(self._tail) > self._half_lines or self._tail_bytes > self._half_bytes:
            self._tail_bytes -= len(self._tail.popleft())

    def lines(self) -> list[str]:
        return [*self._head, *self._tail]

    def belongs(self, line: str) -> bool:
        """Whether ``line`` can continue a faulthandler dump."""
        return continues_dump(strip_prefix(line, self.prefix))


def _prefix_is_consistent(prefix: str, following: Sequence[str]) -> bool | None:
    """Whether the lines after a prefixed header carry the prefix too (None: cannot tell yet).

    A traceback's second line is indented, so the first line that has the prefix or is indented
    without it decides; lines of other sources in between are skipped.
    """
    for line in following:
        if line.startswith(prefix):
            return True
        if line.startswith("  "):
            return False
    return None


def _is_header(line: str) -> bool:
    return _HEADER.match(line) is not None


def _parse_chain(lines: list[str], last: int, depth: int) -> ExceptionInfo | None:
    """Parse the chain whose last segment starts at ``lines[last]``, walking back over links."""
    segments: list[tuple[int, int]] = []
    links: list[str] = []
    start, end = last, _segment_end(lines, last)
    while True:
        segments.append((start, end))
        sep = start - 1
        while sep >= 0 and not lines[sep].strip():
            sep -= 1
        if sep < 0 or lines[sep] not in _CHAIN:
            break
        links.append(_CHAIN[lines[sep]])
        end = sep
        while end > 0 and not lines[end - 1].strip():
            end -= 1
        start = end
        while start > 0 and lines[start - 1].strip():
            start -= 1
        if start == end:
            links.pop()
            break
        start = _segment_start(lines, start, end)
    result: ExceptionInfo | None = None
    for (seg_start, seg_end), link in zip(
        reversed(segments), [None, *reversed(links)], strict=True
    ):
        info = _parse_segment(lines[seg_start:seg_end], depth)
        if info is None:
            continue
        if result is not None and link is not None:
            info = info.model_copy(update={link: result})
        result = info
    return result


def _segment_start(lines: list[str], start: int, end: int) -> int:
    """Where the segment inside the non-blank run ``lines[start:end]`` begins."""
    for index in range(start, end):
        header = _HEADER.search(lines[index])
        if header is not None and not lines[index][: header.start()].rstrip().endswith("|"):
            lines[index] = header.group()  # drop a prefix only this line carries
            return index
        if lines[index].startswith("  | "):
            return index
    for index in range(end - 1, start - 1, -1):
        if _EXCEPTION.match(lines[index]):
            return index
    return end - 1


def _segment_end(lines: list[str], start: int) -> int:
    """Where the segment starting with a header at ``lines[start]`` ends (exclusive)."""
    index = start + 1
    if lines[start].startswith("  + "):
        while index < len(lines) and lines[index].startswith("  "):
            index += 1
        return index
    while index < len(lines) and (lines[index].startswith(" ") and not _is_header(lines[index])):
        index += 1
    if index < len(lines) and _EXCEPTION.match(lines[index]):
        index += 1
        while index < len(lines) and not _ends_message(lines[index]):
            if _GROUP_FIRST.match(lines[index]):  # members of a group: up to its closing line
                while index < len(lines) and not _GROUP_END.match(lines[index]):
                    index += 1
            index += 1
    return index


def _ends_message(line: str) -> bool:
    return not line.strip() or _is_header(line) or line in _CHAIN or bool(_LOG_LINE.match(line))


def _parse_segment(lines: list[str], depth: int) -> ExceptionInfo | None:
    """Parse one exception: optional header, frames, the exception line, message, group members."""
    if lines and (lines[0].startswith("  + ") or lines[0].startswith("  | ")):
        lines = _unbox(lines)
    index = 1 if lines and _is_header(lines[0]) else 0
    frames: list[FrameInfo] = []
    after_frame = False
    while index < len(lines) and lines[index].startswith(" "):
        line = lines[index]
        frame, repeat = _FRAME.match(line), _REPEAT.match(line)
        if frame:
            frames.append(
                FrameInfo(file=frame["file"], line=int(frame["line"]), function=frame["function"])
            )
        elif repeat and frames:
            frames.extend([frames[-1]] * min(int(repeat[1]), _MAX_REPEAT))
        elif after_frame and line.startswith("    ") and not _CARETS.match(line):
            frames[-1] = frames[-1].model_copy(update={"code": line.strip()})
        after_frame = bool(frame)
        index += 1
    head = _EXCEPTION.match(lines[index]) if index < len(lines) else None
    if head is None:
        return None
    group = any(_GROUP_FIRST.match(line) for line in lines[index + 1 :])
    rest: list[str] = []
    for line in lines[index + 1 :]:
        if _GROUP_FIRST.match(line) or (not group and _ends_message(line)):
            break
        rest.append(line)
    info = _exception(head["name"], head["message"], rest, frames, group)
    members = _group_members(lines[index + 1 + len(rest) :], depth) if group else []
    return info.model_copy(update={"exceptions": members}) if members else info


def _exception(
    name: str, message: str | None, rest: list[str], frames: list[FrameInfo], group: bool
) -> ExceptionInfo:
    """Build the `ExceptionInfo` for one exception line and the lines that follow it."""
    if message is None or (name.endswith("KeyError") and message[:1] in "'\"" and len(message) > 1):
        notes, message = rest, message or ""
    elif group:
        more = next(
            (i for i, line in enumerate([message, *rest]) if _SUB_EXCEPTIONS.search(line)), 0
        )
        message = "\n".join([message, *rest[:more]])
        notes = rest[more:]
    else:
        notes, message = [], "\n".join([message, *rest])
    parts = name.split(".")
    cut = next(
        (i for i, p in enumerate(parts) if p[:1].isupper() or p == "<locals>"), len(parts) - 1
    )
    cut = max(cut - 1, 0) if cut < len(parts) and parts[cut] == "<locals>" else cut
    module, qualname = ".".join(parts[:cut]) or "builtins", ".".join(parts[cut:])
    number = _ERRNO.match(message)
    code = int(number[1]) if number else None
    return ExceptionInfo(
        type=qualname,
        module=module,
        mro_names=_mro(module, qualname),
        message=message,
        errno=code,
        errno_name=errno.errorcode.get(code) if code is not None else None,
        frames=frames,
        notes=notes,
    )


def _mro(module: str, qualname: str) -> list[str]:
    """Text tells no MRO but a builtin's; names are as ``runner.describe`` writes them.

    Any other class that ended a traceback is taken to be an ``Exception``: that is what nearly
    every raised class is, and without it a rule such as ``exception = "Exception"`` (or the
    built-in ``python/<Type>`` verdict) could never match a worker's own exception classes.
    """
    cls = getattr(builtins, qualname, None) if module == "builtins" else None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return [c.__qualname__ for c in cls.__mro__ if c is not object]
    name = qualname if module == "builtins" else f"{module}.{qualname}"
    return [name, "Exception", "BaseException"]


def _unbox(lines: list[str]) -> list[str]:
    """Remove one level of exception-group box drawing (``  | `` and its 2-column indent)."""
    out: list[str] = []
    for line in lines:
        if line.startswith(("  | ", "  + ")) or line == "  |":
            out.append(line[4:])
        else:
            out.append(line[2:] if line.startswith("  ") else line)
    return out


def _group_members(lines: list[str], depth: int) -> list[ExceptionInfo]:
    """Parse the boxed members that follow an exception group's own exception line."""
    if depth >= _MAX_DEPTH or not lines or not _GROUP_FIRST.match(lines[0]):
        return []
    members: list[ExceptionInfo] = []
    current: list[str] = []
    for line in [*lines[1:], "  +-"]:
        if _GROUP_NEXT.match(line) or _GROUP_END.match(line):
            content = _unbox(current)
            header = next(
                (i for i in range(len(content) - 1, -1, -1) if _is_header(content[i])), None
            )
            info = _parse_chain(content, header, depth + 1) if header is not None else None
            if info is None and content and not content[0].startswith("and "):
                info = _parse_segment(content, depth + 1)
            if info is not None:
                members.append(info)
            current = []
            if _GROUP_END.match(line):
                break
        else:
            current.append(line)
    return members
