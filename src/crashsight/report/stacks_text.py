"""The stacks and the process tree of a stop as text: for the terminal, markdown and the copy button.

Threads read like Python's own tracebacks (outermost first, the source line under each frame), so
that an operator reads them the way they read every other Python stack::

    pid 4242 (python) thread MainThread 0x7f3a2c1b8740, current: most recent call last
      File "/app/writer.py", line 120, in <module>
        main()
      File "/app/writer.py", line 88, in flush_shard
        lock.acquire()
"""

from __future__ import annotations

from collections.abc import Sequence

from ..diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from ..protocol import FrameInfo
from ..wording import counted

__all__ = ["blocked_rows", "stack_lines", "thread_title", "tree_lines"]

#: Processes named in the one-line list of the terminal verdict.
_CHAIN = 6


def thread_title(stack: ThreadStack, tree: Sequence[ProcessInfo] = ()) -> str:
    """``pid 4242 (python) thread MainThread 0x7f3a2c1b8740, current``."""
    name = next((p.name for p in tree if p.pid == stack.pid), None)
    process = f"pid {stack.pid}" + (f" ({name})" if name else "")
    named = f"{stack.thread_name} " if stack.thread_name else ""
    flags = ", current" if stack.current else ""
    return f"{process} thread {named}{stack.thread_id:#x}{flags}"


def stack_lines(stacks: Sequence[ThreadStack], tree: Sequence[ProcessInfo] = ()) -> list[str]:
    """Every thread as a traceback, the native frames (py-spy) after its Python ones."""
    lines: list[str] = []
    for stack in stacks:
        lines.append(f"{thread_title(stack, tree)}: most recent call last")
        lines += _frame_lines(stack.frames)
        if stack.truncated:
            lines.append("  ... (faulthandler stops at 100 frames)")
        if stack.native_frames:
            lines.append("  native, most recent call last:")
            lines += [f"    {_where(frame)}" for frame in stack.native_frames]
        lines.append("")
    return lines[:-1]


def tree_lines(tree: Sequence[ProcessInfo]) -> list[str]:
    """The tree indented by depth: ``pid name [state, CPU, age]: command``."""
    depth: dict[int, int] = {}
    lines = []
    for info in tree:
        depth[info.pid] = depth.get(info.ppid, -1) + 1
        command = " ".join(info.cmdline) or info.name
        lines.append(
            f"{'  ' * depth[info.pid]}{info.pid} {info.name} [{info.state}, "
            f"cpu {info.cpu_time_s:.2f} s, age {info.age_s:.1f} s]: {command[:200]}"
        )
    return lines


def blocked_rows(
    blocked: BlockedIn | None, stacks: Sequence[ThreadStack], tree: Sequence[ProcessInfo]
) -> list[tuple[str, str]]:
    """The terminal verdict's rows about a stop: where it was stuck, the stacks, the tree."""
    rows: list[tuple[str, str]] = []
    if blocked is not None:
        frame = _stuck_frame(blocked, stacks)
        code = f": {frame.code}" if frame is not None and frame.code else ""
        who = f"pid {blocked.pid}, thread {blocked.thread_name or hex(blocked.thread_id)}"
        rows.append(
            ("blocked", f"{blocked.file}:{blocked.line} in {blocked.function}{code}  ({who})")
        )
    if stacks:
        processes = len({stack.pid for stack in stacks})
        threads = f"{counted(len(stacks), 'thread')} of {counted(processes, 'process')}"
        rows.append(("stacks", f"{threads}, in the report"))
    if tree:
        chain = ", ".join(f"{info.name} {info.pid}" for info in tree[:_CHAIN])
        more = f" and {len(tree) - _CHAIN} more" if len(tree) > _CHAIN else ""
        rows.append(("processes", chain + more))
    return rows


def _stuck_frame(blocked: BlockedIn, stacks: Sequence[ThreadStack]) -> FrameInfo | None:
    """The frame ``blocked`` points at, for its source line."""
    for stack in stacks:
        if (stack.pid, stack.thread_id) == (blocked.pid, blocked.thread_id):
            for frame in reversed(stack.frames):
                if (frame.file, frame.line) == (blocked.file, blocked.line):
                    return frame
    return None


def _frame_lines(frames: Sequence[FrameInfo]) -> list[str]:
    lines = []
    for frame in frames:
        lines.append(f'  File "{frame.file}", line {frame.line}, in {frame.function}')
        if frame.code:
            lines.append(f"    {frame.code}")
    return lines


def _where(frame: FrameInfo) -> str:
    line = f":{frame.line}" if frame.line else ""
    return f"{frame.function} ({frame.file}{line})"
