"""The plugin's leftover check: no process a test's runners started may outlive its runner.

Two kinds of leftover fail a test:

* **Survivors**: processes still alive when the test ends that carry the ``CRASHSIGHT_RUNNER_ID``
  marker of one of the test's runners. The supervisor sweeps a runner's leftovers when the runner
  ends, so a survivor escaped supervision: its supervisor was never exited, or it was started
  after the sweep. The check kills survivors, leaves first, so the next test starts clean.
* **Swept leftovers**: processes the supervisor itself had to kill after their runner ended, such
  as a grandchild in a session of its own. Nothing leaks in the test, but the worker would leak
  them anywhere else. A test whose worker does this on purpose opts out with
  ``@pytest.mark.crashsight(allow_leftovers=True)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psutil

from ..supervisor.stop import find_marked_processes, kill_tree
from ..supervisor.supervisor import Supervisor

if TYPE_CHECKING:
    from ..supervisor.runner import Runner

__all__ = ["LeftoverGuard"]

#: How long survivors get to disappear once killed, before the check gives up on them.
_KILL_WAIT_S = 2.0


class LeftoverGuard:
    """Makes the supervisors of one test and checks, when the test ends, what their runners left.

    Args:
        allow_leftovers: Do not fail for processes the supervisor swept (survivors still fail).
        options: Keyword arguments for every `Supervisor`; ``output`` defaults to ``"discard"``.
    """

    def __init__(self, *, allow_leftovers: bool = False, options: dict[str, Any]) -> None:
        self.allow_leftovers = allow_leftovers
        self._options = {"output": "discard", **options}
        self._since = time.time()
        self._supervisors: list[Supervisor] = []

    def supervisor(self) -> Supervisor:
        """A new, not yet entered, supervisor whose runners this guard will check."""
        made = Supervisor(**self._options)
        self._supervisors.append(made)
        return made

    def problems(self) -> list[str]:
        """One line per leftover, killing survivors on the way; empty when the test was clean."""
        found: list[str] = []
        for runner in self._runners():
            alive = [
                (proc, line)
                for proc in find_marked_processes(runner.id, self._since)
                if (line := _describe_alive(proc)) is not None
            ]
            if alive:
                kill_tree(None, runner.id, self._since)
                _wait_gone([proc for proc, _ in alive])
            found.extend(
                f"runner {runner.name!r} left {line} running; killed it now" for _, line in alive
            )
            swept = sum(status.leftovers_killed for status in runner.attempts)
            if swept and not self.allow_leftovers:
                found.append(
                    f"runner {runner.name!r} left {swept} process(es) behind, which the "
                    "supervisor killed when the runner ended"
                )
        return found

    def _runners(self) -> Iterator[Runner]:
        for made in self._supervisors:
            yield from made.runners


def _describe_alive(proc: psutil.Process) -> str | None:
    """``pid 42 (sleep 600)``, or None when the process is gone or a zombie awaiting its reaper."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"pid {proc.pid} ({' '.join(proc.cmdline())})"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _wait_gone(procs: list[psutil.Process]) -> None:
    """Wait, bounded, until killed processes are gone or zombies (SIGKILL lands asynchronously)."""
    deadline = time.monotonic() + _KILL_WAIT_S
    while procs and time.monotonic() < deadline:
        psutil.wait_procs(procs, timeout=0.05)
        procs = [proc for proc in procs if _describe_alive(proc) is not None]
