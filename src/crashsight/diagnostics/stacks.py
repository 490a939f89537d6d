"""Reading the stack files the processes of a runner's tree write (`crashsight.runner.stackdump`).

A file is one header line, crashsight's ``#`` notes, then every dump faulthandler appended, in
CPython's format (``Modules/faulthandler.c``, ``Python/traceback.c``)::

    # crashsight stacks pid=4242 main=0x7f109ee99b80 signal=SIGUSR2
    # crashsight thread 0x7f109e9d76c0 crashsight-supervisor-watch
    Thread 0x00007f109e1d66c0 (most recent call first):
      File "/app/writer.py", line 12 in upload
      File "/usr/lib/python3.11/threading.py", line 982 in run

    Current thread 0x00007f109ee99b80 (most recent call first):
      File "/app/writer.py", line 88 in flush_shard
      File "/app/writer.py", line 120 in <module>

A dump has one block per thread (at most 100 threads of at most 100 frames each; a cut one ends
in ``...``). Dumps follow each other without a separator, so a thread id seen twice starts the
next dump: a stop by crashsight leaves two, the dump signal's and then SIGTERM's.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..protocol import FrameInfo
from .hangs import ThreadStack

__all__ = ["StackFile", "name_threads", "parse_stack_file", "with_source_lines"]

_HEADER = re.compile(r"^# crashsight stacks pid=(?P<pid>\d+) main=(?P<main>0x[0-9a-f]+) ")
_NOTE = "# crashsight note: "
_NAMED = re.compile(r"^# crashsight thread (?P<id>0x[0-9a-f]+) (?P<name>.+)$")
#: CPython 3.14 adds the thread's name in brackets (python/cpython#125434); older ones print none.
_THREAD = re.compile(
    r"^(?P<current>Current thread|Thread) (?P<id>0x[0-9a-fA-F]+)(?: \[(?P<name>.*)\])?"
    r" \(most recent call first\):$"
)
_FRAME = re.compile(
    r'^  File (?:"(?P<file>.*)"|\?\?\?), line (?P<line>\d+|\?\?\?) in (?P<function>.*)$'
)
#: faulthandler's marks: a thread with more than 100 frames, and more than 100 threads.
_CUT_FRAMES, _CUT_THREADS = "  ...", "..."


@dataclass
class StackFile:
    """What one process's file says: who it is, crashsight's notes, and its dumps in order."""

    pid: int
    main_thread: int | None = None
    #: Names crashsight knows: the main thread's, and those of its own threads.
    thread_names: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dumps: list[list[ThreadStack]] = field(default_factory=list)
    #: Over 100 threads: faulthandler dumps the newest 100, so the main thread may be missing.
    threads_cut: bool = False


def parse_stack_file(text: str, pid: int) -> StackFile:
    """Parse a stack file; an incomplete last line (a dump being written) is ignored.

    Args:
        text: The file's content, or the part written since an offset.
        pid: The process that wrote it (its file name).
    """
    result = StackFile(pid=pid)
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]
    dump: list[ThreadStack] = []
    thread: ThreadStack | None = None
    for line in lines:
        header = _HEADER.match(line)
        if header is not None:
            result.main_thread = int(header["main"], 16)
            result.thread_names[result.main_thread] = "MainThread"
            continue
        named = _NAMED.match(line)
        if named is not None:
            result.thread_names[int(named["id"], 16)] = named["name"]
            continue
        if line.startswith(_NOTE):
            result.notes.append(line.removeprefix(_NOTE))
            continue
        started = _THREAD.match(line)
        if started is not None:
            thread_id = int(started["id"], 16)
            if any(seen.thread_id == thread_id for seen in dump):
                result.dumps.append(dump)
                dump = []
            thread = ThreadStack(
                pid=pid,
                thread_id=thread_id,
                thread_name=started["name"] or None,
                current=started["current"] == "Current thread",
            )
            dump.append(thread)
            continue
        frame = _FRAME.match(line)
        if frame is not None and thread is not None:
            number = frame["line"]
            thread.frames.insert(
                0,
                FrameInfo(
                    file=frame["file"] or "???",
                    line=int(number) if number.isdigit() else None,
                    function=frame["function"],
                ),
            )
        elif line == _CUT_FRAMES and thread is not None:
            thread.truncated = True
        elif line == _CUT_THREADS:
            result.threads_cut = True
    if dump:
        result.dumps.append(dump)
    for threads in result.dumps:
        name_threads(threads, result.thread_names)
    return result


def name_threads(stacks: Iterable[ThreadStack], names: dict[int, str]) -> None:
    """Give each unnamed thread the name its process recorded for it, if any."""
    for stack in stacks:
        if stack.thread_name is None:
            stack.thread_name = names.get(stack.thread_id)


def with_source_lines(stacks: Iterable[ThreadStack]) -> None:
    """Fill each frame's ``code`` with its source line, where the file is readable here.

    The files are read by the supervisor, after the dump: a file changed since the worker loaded
    it shows its new line, as Python's own tracebacks do.
    """
    for stack in stacks:
        for frame in stack.frames:
            if frame.code is None and frame.line is not None and not frame.file.startswith("<"):
                code = linecache.getline(frame.file, frame.line).strip()
                frame.code = code or None
