"""Stopping a runner and everything it started.

A runner may leave descendants three ways: children still in its process group, children that moved
to a session of their own (``setsid``, daemons), and orphans re-parented to init after the runner
died. The first are reached with ``killpg``; the others by the ``CRASHSIGHT_RUNNER_ID`` marker that
every runner's environment carries and every descendant inherits unless it scrubs its environment.
Killing goes leaves first, so no parent lives long enough to replace a killed child.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import anyio
import psutil

from ..runner.channel import ANCESTOR_RUNNERS_ENV, RUNNER_ID_ENV

__all__ = ["StopPolicy", "find_marked_processes", "kill_tree", "signal_group", "wait_gone"]


@dataclass(frozen=True)
class StopPolicy:
    """How a runner is stopped: SIGTERM to its process group, a grace period, then SIGKILL.

    Args:
        grace: Seconds between SIGTERM and SIGKILL of the whole tree.
        first_signal: What asks the runner to stop; SIGTERM unless the worker expects another.
    """

    grace: float = 5.0
    first_signal: signal.Signals = signal.SIGTERM

    def __post_init__(self) -> None:
        if self.grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {self.grace}")


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def find_marked_processes(runner_id: str, not_before: float) -> list[psutil.Process]:
    """Processes whose environment carries this runner's marker.

    A process under a nested supervisor (a ``crashsight run`` inside the runner) carries the
    inner runner's id, and this one's among its ancestors: it is found too.

    Args:
        runner_id: The value of ``CRASHSIGHT_RUNNER_ID`` given to the runner.
        not_before: The runner's start (epoch seconds); older processes are skipped unread, which
            keeps the scan cheap and rules out pid reuse by processes that predate the runner.
    """
    found: list[psutil.Process] = []
    me = os.getpid()
    # process_iter() keeps its Process objects between calls and each caches its create_time,
    # so after the first scan only new processes cost a read of /proc/<pid>/stat.
    for proc in psutil.process_iter():
        try:
            if proc.pid == me or proc.create_time() < not_before - 1.0:
                continue
            env = proc.environ()
            if env.get(RUNNER_ID_ENV) == runner_id or runner_id in env.get(
                ANCESTOR_RUNNERS_ENV, ""
            ).split(" "):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def kill_tree(root_pid: int | None, runner_id: str, not_before: float) -> list[int]:
    """SIGKILL the runner's whole tree, leaves first; return the pids that were killed.

    The runner itself (``root_pid``) is included only while it still runs, and is killed last.
    """
    victims: dict[int, psutil.Process] = {}
    root: psutil.Process | None = None
    if root_pid is not None:
        try:
            root = psutil.Process(root_pid)
            for child in root.children(recursive=True):
                victims[child.pid] = child
        except psutil.NoSuchProcess:
            root = None
    for proc in find_marked_processes(runner_id, not_before):
        if proc.pid != root_pid:
            victims.setdefault(proc.pid, proc)
    killed: list[int] = []
    ordered = sorted(victims.values(), key=_depth, reverse=True)
    for proc in [*ordered, *([root] if root is not None else [])]:
        try:
            proc.kill()
            killed.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    if root_pid is not None:
        signal_group(root_pid, signal.SIGKILL)
    return killed


def _depth(proc: psutil.Process) -> int:
    depth = 0
    try:
        for _ in proc.parents():
            depth += 1
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return depth


async def wait_gone(pids: list[int], within: float = 2.0) -> list[int]:
    """Wait until killed processes are gone (or zombies awaiting their reaper); return stragglers.

    SIGKILL is delivered asynchronously, so a report that says "killed" waits for it to be true.
    """
    pending = list(pids)
    with anyio.move_on_after(within):
        while pending:
            pending = [pid for pid in pending if _still_running(pid)]
            if pending:
                await anyio.sleep(0.01)
    return pending


def _still_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
