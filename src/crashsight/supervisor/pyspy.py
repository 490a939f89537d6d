"""Native frames from py-spy (``--native-stacks``, extra ``crashsight[stacks]``): an edge adapter.

faulthandler sees Python frames only; a worker stuck inside C or C++ (a collective, a CUDA sync,
a C extension's lock) shows its Python caller and nothing below. ``py-spy dump --native --json``
reads the process from outside with ptrace and unwinds both, interleaved. It needs ptrace
permission: the Yama LSM's ``kernel.yama.ptrace_scope`` and, in containers, ``CAP_SYS_PTRACE``
decide, so a refusal becomes a one-line note saying which. py-spy also reads Python's thread
names, which faulthandler does not print. The JSON shape is py-spy's ``src/dump.rs`` (0.3.14+):
a list of threads with ``thread_id``, ``thread_name`` and ``frames`` (innermost first) of
``name``, ``filename``, ``line`` and ``module`` (set for native frames).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ..diagnostics.hangs import ThreadStack
from ..protocol import FrameInfo

__all__ = ["find_py_spy", "native_stacks", "ptrace_refusal"]

#: A py-spy dump pauses the process while it unwinds; a hung attach must not hang the stop.
_TIMEOUT_S = 15.0
_CAP_SYS_PTRACE = 19
_INSTALL = "pip install 'crashsight[stacks]'"


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    filename: str = "???"
    line: int = 0
    module: str | None = None


class _Thread(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: int
    thread_name: str | None = None
    frames: list[_Frame]


def find_py_spy() -> str | None:
    """The py-spy executable: on PATH, or beside this Python (a virtual environment's bin)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if os.access(beside, os.X_OK) else None)


def native_stacks(pid: int, stacks: list[ThreadStack]) -> str | None:
    """Add py-spy's native frames (and thread names) to ``stacks`` of ``pid``; a note on failure.

    A thread that faulthandler did not report (the process blocks the dump signal) is added from
    py-spy's own Python frames.
    """
    exe = find_py_spy()
    if exe is None:
        return f"--native-stacks: py-spy is not installed ({_INSTALL}); Python frames only"
    try:
        done = subprocess.run(
            [exe, "dump", "--pid", str(pid), "--native", "--json"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"--native-stacks: py-spy took over {_TIMEOUT_S:g} s on pid {pid}; no native frames"
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return f"--native-stacks: py-spy could not read pid {pid} ({said}); {ptrace_refusal()}"
    try:
        threads = [_Thread.model_validate(item) for item in json.loads(done.stdout)]
    except (ValueError, TypeError, ValidationError) as exc:
        return f"--native-stacks: py-spy's output for pid {pid} was not understood ({exc!s:.120})"
    mine = {stack.thread_id: stack for stack in stacks if stack.pid == pid}
    for thread in threads:
        frames = [_frame_info(frame) for frame in reversed(thread.frames)]
        stack = mine.get(thread.thread_id)
        if stack is None:
            python = [
                f
                for f, raw in zip(frames, reversed(thread.frames), strict=True)
                if raw.module is None
            ]
            stack = ThreadStack(pid=pid, thread_id=thread.thread_id, frames=python)
            stacks.append(stack)
        stack.native_frames = frames
        stack.thread_name = stack.thread_name or thread.thread_name
    return None


def ptrace_refusal() -> str:
    """Why py-spy may not attach to a runner, as far as Linux tells."""
    capabilities = _capabilities()
    has_cap = capabilities is not None and bool(capabilities >> _CAP_SYS_PTRACE & 1)
    try:
        scope: int | None = int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text())
    except (OSError, ValueError):
        scope = None
    if scope == 3:
        return "kernel.yama.ptrace_scope is 3: no process may attach"
    if scope in (1, 2) and not has_cap:
        return (
            f"kernel.yama.ptrace_scope is {scope}: attaching to a process that py-spy did not "
            "start needs CAP_SYS_PTRACE"
        )
    if capabilities is not None and not has_cap and os.getuid() == 0:
        return "CAP_SYS_PTRACE is missing (containers drop it: --cap-add SYS_PTRACE)"
    return "ptrace was refused (a seccomp profile may forbid it)"


def _capabilities() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        return None
    return None


def _frame_info(frame: _Frame) -> FrameInfo:
    return FrameInfo(file=frame.filename, line=frame.line or None, function=frame.name)
