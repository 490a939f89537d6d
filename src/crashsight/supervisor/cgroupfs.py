"""Killing and removing a runner's cgroups: file operations only, standard library only.

Two processes run these: the supervisor (when a runner stops or ends: from a worker thread when
the group still holds processes, whose kill may poll and sleep, on its loop when it is empty) and
the guardian (when the supervisor itself died), which runs with ``python -S`` and must not load
pydantic or anyio. So this module imports nothing but the standard library (and the
standard-library-only `crashsight.diagnostics.kernelfiles`).

A runner may have up to three cgroup folders, all holding the same processes: one in the v2
hierarchy (for ``cgroup.kill``) and, where the host binds a controller to a v1 hierarchy, one in
that controller's hierarchy (``memory``, ``pids``). Killing works on whichever exist:

* v2 with ``cgroup.kill`` (Linux 5.14+): one write kills the whole subtree, forks in flight
  included, as ``systemctl kill`` does.
* v2 without it: freeze the subtree (nothing can fork while frozen), SIGKILL every member,
  thaw. SIGKILL reaches frozen tasks in cgroup v2.
* v1 only: SIGKILL every member until none is left; a process cannot leave a cgroup on its own
  unless it may write to ``cgroup.procs`` elsewhere (root), so the loop converges.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from ..diagnostics.kernelfiles import read_kernel_text, write_kernel_text

__all__ = ["empty", "kill_all", "members", "remove_all"]

#: How often the kill loop looks at the cgroups again while they still hold processes: soon at
#: first (SIGKILL lands within a millisecond), then less often (a large tree takes longer).
_FIRST_POLL_S = 0.0005
_MAX_POLL_S = 0.02


def members(folder: Path) -> set[int]:
    """Pids in ``folder`` and its sub-groups (a worker may create sub-groups of its own)."""
    found: set[int] = set()
    for directory, _, _ in os.walk(folder):
        try:
            text = read_kernel_text(Path(directory) / "cgroup.procs")
        except OSError:
            continue
        found.update(int(line) for line in text.split() if line.isdigit())
    return found


def kill_all(v2: Path | None, v1: Sequence[Path], *, kill_file: bool, within: float) -> set[int]:
    """SIGKILL every process in a runner's cgroups and wait (bounded) until they are empty.

    Args:
        v2: The runner's v2 folder, if it has one.
        v1: Its v1 folders (memory, pids), which hold the same processes.
        kill_file: Whether the kernel has ``cgroup.kill``; without it the v2 folder is frozen
            first so that nothing forks while members are killed one by one.
        within: Seconds to keep killing before giving up on stragglers.

    Returns:
        The pids that were members when the kill began or appeared during it.
    """
    if v2 is not None and empty(v2):
        return set()  # one read instead of walking every folder twice: the usual end of a runner
    folders = [*([v2] if v2 is not None else []), *v1]
    victims = _members_of(folders)
    if v2 is not None:
        if kill_file:
            _write(v2 / "cgroup.kill", "1")
        else:
            _freeze(v2, within)
    deadline = time.monotonic() + within
    pause = _FIRST_POLL_S
    try:
        while left := _members_of(folders):
            victims |= left
            for pid in left:
                _sigkill(pid)
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, _MAX_POLL_S)
    finally:
        if v2 is not None and not kill_file:
            _write(v2 / "cgroup.freeze", "0")
    return victims


def remove_all(folders: Sequence[Path]) -> list[str]:
    """Remove the folders and their sub-groups, deepest first; return one line per failure.

    A cgroup folder cannot be deleted file by file: each (empty) group is removed with rmdir.
    """
    problems: list[str] = []
    for folder in folders:
        for directory, _, _ in os.walk(folder, topdown=False):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"could not remove cgroup {directory}: {exc.strerror}")
    return problems


def _members_of(folders: Sequence[Path]) -> set[int]:
    found: set[int] = set()
    for folder in folders:
        found |= members(folder)
    return found


def _freeze(folder: Path, within: float) -> None:
    """Freeze the v2 subtree and wait (bounded) until the kernel says it is frozen."""
    _write(folder / "cgroup.freeze", "1")
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and _event(folder, "frozen") not in ("1", None):
        time.sleep(_FIRST_POLL_S)


def empty(v2: Path) -> bool:
    """Whether the v2 group and its sub-groups hold no process (one read of ``cgroup.events``)."""
    return _event(v2, "populated") == "0"


def _event(folder: Path, key: str) -> str | None:
    """A value from the v2 group's ``cgroup.events`` (covers its sub-groups), None if unreadable.

    ``populated`` is 0 once no process is left in the group or below it; ``frozen`` is 1 once
    a freeze took effect.
    """
    try:
        events = read_kernel_text(folder / "cgroup.events").split()
    except OSError:
        return None
    return events[events.index(key) + 1] if key in events[::2] else None


def _write(path: Path, text: str) -> None:
    # Gone already (the group was removed) or never there: the kill loop still runs.
    with contextlib.suppress(OSError):
        write_kernel_text(path, text)


def _sigkill(pid: int) -> None:
    with contextlib.suppress(OSError):  # exited in the meantime
        os.kill(pid, signal.SIGKILL)
