"""The start gate: a runner waits here until the supervisor has put it in its cgroup.

A runner must be in its cgroup before it runs any code of its own, or a quick fork could leave a
child outside. A cold spawn cannot start straight in a cgroup from Python
(``clone3(CLONE_INTO_CGROUP)`` is not exposed, and ``subprocess`` forks and execs on its own), so
the runner is started gated, as runc starts a container's init: the supervisor moves the new pid
into ``cgroup.procs`` itself (it alone learns whether that worked) and then writes one byte to a
pipe the runner waits on. End-of-file instead of the byte means the supervisor died or gave up
first, and the runner exits at once. A runner forked from the zygote needs no gate where the
zygote can fork it straight into its cgroups (`crashsight.runner.cgroupfork`).
"""

from __future__ import annotations

import os

from .channel import START_GATE_ENV

__all__ = ["wait_for_start_gate"]

#: Exit status of a runner whose supervisor never opened the gate (128 + SIGKILL, as if killed).
GATE_CLOSED_EXIT = 137


def wait_for_start_gate() -> None:
    """Block until the supervisor opens the gate, when there is one; exit if it never does."""
    fd_text = os.environ.pop(START_GATE_ENV, None)
    if not fd_text:
        return
    fd = int(fd_text)
    try:
        opened = os.read(fd, 1)
    finally:
        os.close(fd)
    if not opened:
        os._exit(GATE_CLOSED_EXIT)
