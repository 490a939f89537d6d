"""The runner's process tree at a stop: who is there, in which state, how busy and how old.

The tree is the runner and its descendants, parents before children (breadth first from the
runner), then the processes that escaped it (their own session, re-parented orphans), found by the
runner-id marker in their environment, like the stop policy finds them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil

from ..diagnostics.hangs import ProcessInfo
from .stop import find_marked_processes

__all__ = [
    "SignalMasks",
    "describe_processes",
    "looks_like_python",
    "runner_tree",
    "signal_masks",
    "waited_pids",
]

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError)


def runner_tree(root_pid: int, runner_id: str, not_before: float) -> list[psutil.Process]:
    """The runner (while it exists), its descendants breadth first, then marked escapees.

    Args:
        root_pid: The runner's pid.
        runner_id: The runner's marker (``CRASHSIGHT_RUNNER_ID``).
        not_before: The runner's start, in epoch seconds: older processes are not its own.
    """
    found: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(root_pid)
        found[root.pid] = root
        queue = [root]
        while queue:
            parent = queue.pop(0)
            for child in parent.children():
                if child.pid not in found:
                    found[child.pid] = child
                    queue.append(child)
    except _GONE:
        pass
    for proc in find_marked_processes(runner_id, not_before):
        found.setdefault(proc.pid, proc)
    return list(found.values())


def describe_processes(processes: list[psutil.Process]) -> list[ProcessInfo]:
    """A `ProcessInfo` per process still there (cmdlines unredacted: the status redacts them)."""
    now = time.time()
    infos: list[ProcessInfo] = []
    for proc in processes:
        try:
            with proc.oneshot():
                cpu = proc.cpu_times()
                infos.append(
                    ProcessInfo(
                        pid=proc.pid,
                        ppid=proc.ppid(),
                        name=proc.name(),
                        cmdline=proc.cmdline(),
                        state=proc.status(),
                        cpu_time_s=round(cpu.user + cpu.system, 3),
                        age_s=round(max(0.0, now - proc.create_time()), 3),
                        waiting_for=waited_pids(proc.pid),
                    )
                )
        except _GONE:
            continue
    return infos


def looks_like_python(info: ProcessInfo) -> bool:
    """Whether a process is a Python interpreter, by its name or its program's."""
    program = os.path.basename(info.cmdline[0]) if info.cmdline else ""
    return any(name.startswith(("python", "pypy")) for name in (info.name, program))


@dataclass(frozen=True)
class SignalMasks:
    """A process's signal masks as Linux shows them in ``/proc/<pid>/status`` (bit n-1 = signal n)."""

    caught: int
    ignored: int
    #: Signals that every thread blocks: a process-directed signal then waits, undelivered.
    blocked_everywhere: int


def signal_masks(pid: int) -> SignalMasks | None:
    """The masks of ``pid``; None where ``/proc`` does not tell (macOS) or the process is gone."""
    try:
        status = _status_fields(f"/proc/{pid}/status")
        blocked = -1
        for task in os.listdir(f"/proc/{pid}/task"):
            blocked &= _status_fields(f"/proc/{pid}/task/{task}/status")["SigBlk"]
        return SignalMasks(
            caught=status["SigCgt"], ignored=status["SigIgn"], blocked_everywhere=blocked
        )
    except (OSError, KeyError, ValueError):
        return None


_MASKS = frozenset({"SigBlk", "SigIgn", "SigCgt"})


def _status_fields(path: str) -> dict[str, int]:
    with open(path) as handle:
        fields = dict(line.split(":", 1) for line in handle if line[:6] in _MASKS)
    return {name: int(value.strip(), 16) for name, value in fields.items()}


#: The wait syscalls by machine: number -> index of the pid argument. wait4(pid, ...), and
#: waitid(P_PID, pid, ...). Numbers from Linux's arch/x86/entry/syscalls/syscall_64.tbl and
#: include/uapi/asm-generic/unistd.h (arm64).
_WAIT_SYSCALLS: dict[str, dict[int, int]] = {
    "x86_64": {61: 0, 247: 1},
    "aarch64": {260: 0, 95: 1},
}
_P_PID = 1


def waited_pids(pid: int) -> list[int]:
    """The pids ``pid``'s threads are blocked waiting for, from ``/proc/<pid>/task/*/syscall``.

    A thread blocked in a syscall shows its number and arguments there (to its parent, or with
    ptrace rights); ``subprocess``'s ``wait`` is ``wait4(child, ...)``. Empty where Linux does
    not say (another system or machine, a running thread, no permission).
    """
    table = _WAIT_SYSCALLS.get(os.uname().machine, {})
    if not table:
        return []
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/syscall") as handle:
                fields = handle.read().split()
            number = int(fields[0])
            args = [int(field, 16) for field in fields[1:7]]
        except (OSError, ValueError, IndexError):
            continue  # "running", gone, or not ours to read
        where = table.get(number)
        if where is None or (where == 1 and args[0] != _P_PID):
            continue
        if 0 < args[where] < 2**31:
            found.append(args[where])
    return found
