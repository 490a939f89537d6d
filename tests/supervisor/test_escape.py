"""The escape suite: real processes that try to outlive their runner, with and without a cgroup.

Each worker hides descendants the way real programs do (tests/escape_workers.py) and writes their
pids down. With a cgroup per runner no descendant survives, whatever it did. With process groups
only (``cgroup="off"``) the outcome is what the README's Guarantees table promises for that case;
the survivors of a documented escape are killed by the test itself.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import psutil
import pytest

from crashsight import RunnerFailed, Supervisor
from crashsight.protocol import Progress
from crashsight.supervisor.cgroup import CgroupHost, CgroupMode
from crashsight.supervisor.status import RunnerStatus
from crashsight.supervisor.stop import StopPolicy

ESCAPE = Path(__file__).parents[1] / "escape_workers.py"
#: Bound on every wait for a worker's escapees to be in place (never reached when things work).
_WITHIN_S = 30.0


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for init to reap it does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def escapees(tmp_path: Path) -> Iterator[Path]:
    """The pid file a worker fills; whatever it names and is still alive is killed at teardown."""
    pidfile = tmp_path / "escapees"
    yield pidfile
    for pid in _read_pids(pidfile):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _read_pids(pidfile: Path) -> list[int]:
    return [int(pid) for pid in pidfile.read_text().split()] if pidfile.exists() else []


async def run_escape(
    worker: str, mode: str, pidfile: Path, cgroup: CgroupMode
) -> tuple[RunnerStatus, list[int]]:
    """Run a plain-program escape worker; stop it once its escapees are in place if it stays."""
    argv = [sys.executable, str(ESCAPE), worker, str(pidfile), mode]
    async with Supervisor(
        output="discard", stop_policy=StopPolicy(grace=0.5), cgroup=cgroup
    ) as supervisor:
        runner = await supervisor.spawn_command(argv)
        if mode == "stay":
            with anyio.fail_after(_WITHIN_S):
                async for event in runner.events():
                    if isinstance(event, Progress):
                        break
            await runner.stop("the test is done with it")
        status = await runner.wait()
    return status, _read_pids(pidfile)


CASES = [
    pytest.param("double_fork_scrubbed", "exit", id="setsid-double-fork-scrubbed-env"),
    pytest.param("blocked_grandchild", "stay", id="grandchild-ignores-sigterm-blocks-signals"),
    pytest.param("session_hopper", "exit", id="session-and-group-changed-twice"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("worker", "mode"), CASES)
async def test_nothing_escapes_a_cgroup(
    worker: str, mode: str, escapees: Path, cgroup_host: CgroupHost
) -> None:
    """With a cgroup per runner, every descendant is gone when the runner's status arrives."""
    status, pids = await run_escape(worker, mode, escapees, "required")
    assert pids, "the worker's escapees reported in"
    assert [pid for pid in pids if alive(pid)] == []
    assert status.containment is not None
    assert status.containment.method == "cgroup"
    assert status.containment.cgroup is not None
    assert not await anyio.Path(status.containment.cgroup).exists(), "its cgroup is removed"
    assert status.leftovers_killed >= 1


#: What process groups, the process tree and the environment marker achieve for each case: the
#: README's Guarantees table says the same.
SURVIVES_WITHOUT_CGROUP = {
    "double_fork_scrubbed": True,  # no group, no parent, no marker: nothing finds it
    "blocked_grandchild": False,  # in the runner's group: SIGKILL after the grace period
    "session_hopper": False,  # keeps the marker in its environment: the sweep finds it
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("worker", "mode"), CASES)
async def test_what_process_groups_alone_contain(worker: str, mode: str, escapees: Path) -> None:
    """Without cgroups, only a daemon that also scrubbed its environment outlives the runner."""
    status, pids = await run_escape(worker, mode, escapees, "off")
    assert pids, "the worker's escapees reported in"
    survivors = [pid for pid in pids if alive(pid)]
    assert bool(survivors) is SURVIVES_WITHOUT_CGROUP[worker], survivors
    assert status.containment is not None
    assert status.containment.method == "process_group"
    assert status.containment.reason == "cgroups are off (cgroup='off')"


@pytest.mark.asyncio
async def test_a_fork_bomb_stays_under_its_pids_limit(
    escapees: Path, cgroup_host: CgroupHost
) -> None:
    """A fork bomb under pids_max gets EAGAIN, is reported as resource/pids_max, and leaves nothing.

    The bomb runs under the bootstrap (so the start gate of bootstrapped runners is covered) and
    stops by itself at 200 children if no limit held.
    """
    async with Supervisor(output="discard", pids_max=16, cgroup="required") as supervisor:
        runner = await supervisor.spawn(f"{ESCAPE}:fork_bomb", str(escapees), "200")
        status = await runner.wait()
    children = _read_pids(escapees)
    assert isinstance(status, RunnerFailed)
    assert (status.category, status.subcategory) == ("resource", "pids_max"), status.summary
    assert status.termination_error is not None
    assert status.termination_error.type.endswith("BlockingIOError")
    assert 0 < len(children) < 16
    assert [pid for pid in children if alive(pid)] == []
    assert status.containment is not None
    assert status.containment.pids_max == 16
    assert (status.containment.pids_limit_hits or 0) >= 1
    assert any("pids limit (16) refused" in note for note in status.notes)
