"""Spawn options and policies the README promises, each through the real supervisor: the stdin a
runner gets, the interpreter it runs on, restarts with backoff and a predicate, a dumped core, and
the leaves-first order of the final SIGKILL."""

from __future__ import annotations

import os
import resource
import signal
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import psutil
import pytest

from crashsight.protocol import Progress
from crashsight.supervisor.restart import RestartPolicy
from crashsight.supervisor.runner import Runner
from crashsight.supervisor.status import RunnerCancelled, RunnerFailed, RunnerSucceeded
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "workers.py"
EXIT = "crashsight.testing.targets:exit"


async def _progress(runner: Runner) -> list[str]:
    return [event.message async for event in runner.events() if isinstance(event, Progress)]


async def _first_progress(runner: Runner) -> str:
    with anyio.fail_after(60):
        async for event in runner.events():
            if isinstance(event, Progress):
                return event.message
    raise AssertionError("the runner ended without a Progress event")


@contextmanager
def _as_stdin(fd: int) -> Iterator[None]:
    """Make ``fd`` this process's fd 0 for the block (runners spawned inside inherit it)."""
    saved = os.dup(0)
    os.dup2(fd, 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


@pytest.mark.asyncio
@pytest.mark.parametrize("inherit", [False, True], ids=["dev-null", "inherited"])
async def test_stdin_is_dev_null_unless_inherited(inherit: bool) -> None:
    """By default a runner's stdin is /dev/null (it reads EOF, never the terminal); with
    ``inherit_stdin=True`` it is the supervisor's own stdin."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"shard-7\n")
    os.close(write_end)
    try:
        async with Supervisor(output="discard") as supervisor:
            with _as_stdin(read_end):
                runner = await supervisor.spawn(f"{WORKERS}:report_stdin", inherit_stdin=inherit)
            [message] = await _progress(runner)
        expected = os.fstat(read_end) if inherit else os.stat(os.devnull)
    finally:
        os.close(read_end)
    assert message == f"{expected.st_dev}:{expected.st_ino} {'shard-7' if inherit else ''}"


@pytest.mark.asyncio
async def test_spawn_runs_the_target_on_the_given_interpreter(tmp_path: Path) -> None:
    """``spawn(python=...)`` starts the bootstrap with that interpreter, not this one."""
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\nINTERPRETER_WRAPPER="$0" exec {sys.executable} "$@"\n', encoding="utf-8"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{WORKERS}:report_interpreter", python=str(wrapper))
        messages = await _progress(runner)
    assert isinstance(runner.status, RunnerSucceeded)
    assert messages == [f"wrapper={wrapper}"]


def test_backoff_grows_by_the_factor_up_to_its_bound() -> None:
    """The delay before restart n is backoff * factor**(n-1), never above max_backoff."""
    policy = RestartPolicy(max_restarts=5, backoff=0.5, factor=3.0, max_backoff=10.0)
    assert [policy.delay_before(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


@pytest.mark.asyncio
async def test_restarts_wait_their_backoff() -> None:
    """Each restart starts no sooner than its backoff after the previous attempt ended."""
    policy = RestartPolicy(max_restarts=2, backoff=0.4, factor=2.0)
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(EXIT, "3", restart=policy)
        await runner.wait()
    first, second, third = runner.attempts
    for earlier, later, delay in ((first, second, 0.4), (second, third, 0.8)):
        ended = earlier.started_at.timestamp() + earlier.duration_s
        assert later.started_at.timestamp() - ended >= delay


@pytest.mark.asyncio
async def test_retry_predicate_stops_restarts_of_other_failures() -> None:
    """A failure the predicate does not accept is final, whatever restarts are left."""
    policy = RestartPolicy(max_restarts=3, backoff=0.01, retry_if=lambda s: s.category == "http")
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(EXIT, "3", restart=policy)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.category == "unknown"
    assert [attempt.attempt for attempt in runner.attempts] == [1]


@pytest.mark.asyncio
async def test_stop_during_backoff_starts_no_new_attempt() -> None:
    """Stopped while it waits to restart, a runner keeps the failure that led to the restart."""
    policy = RestartPolicy(max_restarts=3, backoff=600)
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(EXIT, "3", restart=policy)
        with anyio.fail_after(60):  # the first attempt's status: the backoff has begun
            async for event in runner.events():
                if isinstance(event, RunnerFailed):
                    break
        status = await runner.stop("enough")
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 3
    assert len(runner.attempts) == 1


@pytest.fixture
def cores_land_in_the_cwd(tmp_path: Path) -> Iterator[Path]:
    """A folder for a runner whose cores the kernel writes into its working directory.

    Skips where core_pattern sends cores elsewhere (a pipe to systemd-coredump or apport, an
    absolute path) or the hard core limit forbids them. Removes the cores afterwards.
    """
    try:
        pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    except OSError:
        pytest.skip("no /proc/sys/kernel/core_pattern: cannot tell where a core would go")
    if not pattern or pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core_pattern {pattern!r} does not write cores to the working directory")
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("the hard RLIMIT_CORE is 0: no process here may dump a core")
    yield tmp_path
    for path in tmp_path.iterdir():
        path.unlink()


@pytest.mark.asyncio
async def test_core_dump_is_reported(cores_land_in_the_cwd: Path) -> None:
    """A worker that aborts with cores enabled is reported as killed by SIGABRT, core dumped,
    and the kernel really wrote the core."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{WORKERS}:abort_with_core", cwd=cores_land_in_the_cwd)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.core_dumped is True
    assert status.exit.description == "killed by signal SIGABRT (6), core dumped"
    assert any(name.startswith("core") for name in os.listdir(cores_land_in_the_cwd))


@pytest.mark.asyncio
@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_CORE)[0] != 0,
    reason="this session dumps cores by default (its RLIMIT_CORE is not 0)",
)
async def test_abort_without_core_says_so() -> None:
    """Under RLIMIT_CORE 0 (most shells' default), no core is claimed."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:abort")
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.core_dumped is False
    assert status.exit.description == "killed by signal SIGABRT (6)"


@pytest.mark.asyncio
async def test_final_sigkill_goes_leaves_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the grace period, the whole tree is SIGKILLed deepest first and the runner last, so
    no parent lives on to replace a killed child.

    This is the process-tree sweep, used where the runner has no cgroup of its own (with one,
    ``cgroup.kill`` ends the whole tree at once and no order exists), so cgroups are off here.
    Every process of the tree ignores SIGTERM (inherited from the spawn), so the SIGKILL sweep
    finds the whole chain alive; the order is recorded where the kills are sent. This is the
    process-group containment (``cgroup="off"``): with a cgroup, ``cgroup.kill`` ends the whole
    tree at once, forks in flight included, before the sweep finds anything.
    """
    killed: list[int] = []
    real_kill = psutil.Process.kill

    def recording_kill(self: psutil.Process) -> None:
        killed.append(self.pid)
        real_kill(self)

    monkeypatch.setattr(psutil.Process, "kill", recording_kill)
    async with Supervisor(
        output="discard", stop_policy=StopPolicy(grace=0.5), cgroup="off"
    ) as supervisor:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            runner = await supervisor.spawn(f"{WORKERS}:process_chain")
        finally:
            signal.signal(signal.SIGTERM, previous)
        chain = [int(pid) for pid in (await _first_progress(runner)).split()]
        status = await runner.stop("enough")
    assert isinstance(status, RunnerCancelled)
    assert status.signals_sent == ["SIGTERM", "SIGKILL"]
    assert killed[:4] == [*reversed(chain), status.pid]
