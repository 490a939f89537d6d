"""A representative subset of the supervisor's behaviour, run under trio through anyio."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from crashsight.protocol import Heartbeat, Progress
from crashsight.supervisor.status import RunnerCancelled, RunnerFailed, RunnerSucceeded
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "workers.py"
INJECT = "crashsight.testing.targets:"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_segfault_under_trio() -> None:
    """A real segfault is reported the same way under trio."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{INJECT}segfault", "--task", "shard-7")
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGSEGV"
    assert status.tasks.in_flight == ["shard-7"]


async def test_events_under_trio() -> None:
    """Events stream in order under trio."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{WORKERS}:succeed")
        events = [e async for e in runner.events()]
    assert any(isinstance(e, Progress) and e.fraction == 0.5 for e in events)
    assert isinstance(events[-1], RunnerSucceeded)


async def test_no_progress_and_cancellation_under_trio() -> None:
    """The watchdog and supervisor cancellation both work under trio."""
    async with Supervisor(output="discard", no_progress_timeout=0.5) as supervisor:
        hung = await supervisor.spawn(f"{INJECT}hang")
        assert (await hung.wait()).status == "failed"
    with anyio.CancelScope() as scope:
        async with Supervisor(output="discard", stop_policy=StopPolicy(grace=0.5)) as supervisor:
            stubborn = await supervisor.spawn(f"{INJECT}ignore_sigterm")
            with anyio.fail_after(60):  # its heartbeat: SIGTERM is ignored from then on
                async for event in stubborn.events():
                    if isinstance(event, Heartbeat):
                        scope.cancel()
    status = stubborn.status
    assert isinstance(status, RunnerCancelled)
    assert status.signals_sent == ["SIGTERM", "SIGKILL"]


async def test_cancelled_while_waiting_for_runners_on_exit_under_trio() -> None:
    """Under trio too, a cancellation during the block's exit stops and reaps every runner."""
    with anyio.CancelScope() as scope:
        async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
            sleeper = await supervisor.spawn_command(["sleep", "30"])
            scope.cancel()  # delivered at the next wait: the block's exit
    assert scope.cancelled_caught
    assert isinstance(sleeper.status, RunnerCancelled)
