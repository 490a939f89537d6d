"""Lifecycle guarantees of the supervisor: stopping, leftovers, bad channels, volume, cancellation."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import anyio
import psutil
import pytest
from pydantic import BaseModel
from tests import event_workers

from crashsight.errors import RunnerStateError
from crashsight.protocol import Heartbeat, Progress, Ready, UserEvent
from crashsight.supervisor.restart import RestartPolicy
from crashsight.supervisor.runner import Runner
from crashsight.supervisor.status import RunnerCancelled, RunnerFailed, RunnerSucceeded
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "workers.py"


def target(name: str) -> str:
    """A worker of ``tests/workers.py``."""
    return f"{WORKERS}:{name}"


def inject(name: str) -> str:
    """An injector of `crashsight.testing.targets`."""
    return f"crashsight.testing.targets:{name}"


@pytest.mark.asyncio
async def test_sigterm_ignored_escalates_to_sigkill() -> None:
    """A child that ignores SIGTERM is SIGKILLed after the grace period, and the report says so.

    The child ignores SIGTERM from its first instruction (an ignored disposition is inherited
    across fork and exec), so the deadline may fire at any point of its start-up.
    """
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=0.5)) as supervisor:
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            runner = await supervisor.spawn(inject("ignore_sigterm"), deadline=0.5)
        finally:
            signal.signal(signal.SIGTERM, previous)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGKILL"
    assert status.signals_sent == ["SIGTERM", "SIGKILL"]
    assert (status.category, status.subcategory) == ("timeout", "deadline")
    assert any("grace period" in note for note in status.notes)


@pytest.mark.asyncio
async def test_grandchild_left_running_is_killed() -> None:
    """A grandchild in its own session, left behind by a successful runner, is found and killed."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(inject("leave_grandchild"))
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    pid = int(next(line for line in status.stderr_tail if "left grandchild" in line).split()[3])
    assert not _alive(pid)
    assert any("left behind" in note for note in status.notes)


@pytest.mark.asyncio
async def test_grandchild_holding_stderr_does_not_delay_report() -> None:
    """A daemon grandchild holding stderr open is killed after the drain bound; no line is lost."""
    started = time.monotonic()
    async with Supervisor(output="discard", drain_timeout=0.5) as supervisor:
        runner = await supervisor.spawn(target("grandchild_holds_stderr"))
        status = await runner.wait()
    elapsed = time.monotonic() - started
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 7
    assert "last words before the crash" in status.stderr_tail
    assert any("still held open" in note for note in status.notes)
    assert elapsed < 10, "the report must not wait for the grandchild"


@pytest.mark.asyncio
async def test_garbage_on_channel_becomes_protocol_issues() -> None:
    """Random bytes and an oversize frame become protocol issues; the runner stays supervised."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(target("write_garbage_then_events"))
        events = [event async for event in runner.events()]
        status = await runner.wait()
    assert isinstance(events[0], Ready)
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 5
    problems = [issue.problem for issue in status.protocol_issues]
    assert problems[:2] == ["garbage", "oversize"]
    assert "truncated" in problems


@pytest.mark.asyncio
async def test_child_closing_channel_keeps_being_supervised() -> None:
    """A child that closes its channel and keeps working still ends with a proper status."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(target("close_channel_and_work"))
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    assert "still working" in status.stderr_tail


@pytest.mark.asyncio
async def test_ten_thousand_events_complete_and_in_order() -> None:
    """10,000 events arrive complete, in order, with no sequence gap."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(target("many_events"))
        progress = [e for e in [e async for e in runner.events()] if isinstance(e, Progress)]
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    assert [p.message for p in progress] == [f"event {i}" for i in range(10_000)]
    assert [p.seq for p in progress] == list(range(1, 10_001))
    assert status.protocol_issues == []
    assert status.events_dropped == 0


@pytest.mark.asyncio
async def test_overflow_drops_oldest_but_never_the_status() -> None:
    """With nobody reading, the bounded buffer drops the oldest events and counts them exactly.

    The worker sends Ready and then ``event 0`` to ``event 999``: 1,002 items with the status in a
    buffer of 100, so Ready and events 0 to 900 are dropped and the newest 99 survive, in order.
    """
    async with Supervisor(output="discard", event_buffer=100) as supervisor:
        runner = await supervisor.spawn(
            target("many_events"), env={**os.environ, "EVENT_COUNT": "1000"}
        )
        status = await runner.wait()
    events = [event async for event in runner.events()]
    assert events[-1] == status
    assert [e.message for e in events[:-1] if isinstance(e, Progress)] == [
        f"event {i}" for i in range(901, 1000)
    ]
    assert len(events) == 100
    assert status.events_dropped == 1 + 901


@pytest.mark.asyncio
async def test_fifty_runners_at_once() -> None:
    """Fifty concurrent runners each get exactly one correct final status."""
    commands = [(inject("exit"), "3") if i % 2 else (target("succeed"),) for i in range(50)]
    async with Supervisor(output="discard") as supervisor:
        runners = [await supervisor.spawn(*command) for command in commands]
    statuses = [await r.wait() for r in runners]
    assert [s.exit.code for s in statuses] == [3 if i % 2 else 0 for i in range(50)]
    assert len({s.pid for s in statuses}) == 50


@pytest.mark.asyncio
async def test_cancelling_supervisor_stops_runners() -> None:
    """Cancelling the supervisor stops every runner with the policy and reaps it.

    The cancellation comes once both workers have sent their heartbeat, so the second one
    really ignores SIGTERM by then.
    """
    runners = []
    with anyio.CancelScope() as scope:
        async with (
            Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor,
            anyio.create_task_group() as tg,
        ):
            beats = []
            for name in ("hang", "ignore_sigterm"):
                runners.append(await supervisor.spawn(inject(name)))
                beats.append(anyio.Event())
                tg.start_soon(_signal_heartbeat, runners[-1], beats[-1])
            with anyio.fail_after(60):
                for beat in beats:
                    await beat.wait()
            scope.cancel()
    statuses = [r.status for r in runners]
    assert all(isinstance(s, RunnerCancelled) for s in statuses), statuses
    assert [s.exit.signal for s in statuses if s is not None] == ["SIGTERM", "SIGKILL"]
    assert all(not _alive(r.pid or 0) for r in runners)


@pytest.mark.asyncio
async def test_a_stop_cancelled_in_its_grace_period_leaves_the_runner_to_the_next() -> None:
    """A stop whose caller is cancelled before its SIGKILL does not stall the next stop.

    The next one starts over and ends the runner, which ignores SIGTERM: it used to wait for an
    exit that only the cancelled stop's SIGKILL would have brought, forever (the same happened to
    a supervisor cancelled while a watchdog's stop was in its grace period).
    """
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
        runner = await supervisor.spawn(inject("ignore_sigterm"))
        beat = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signal_heartbeat, runner, beat)
            with anyio.fail_after(60):
                await beat.wait()  # it ignores SIGTERM from here on
            with anyio.move_on_after(0.3):  # inside the grace period: before any SIGKILL
                await runner.stop("first")
            assert _alive(runner.pid or 0)
            with anyio.fail_after(30):
                status = await runner.stop("second")
    assert isinstance(status, RunnerCancelled)
    assert status.exit.signal == "SIGKILL"
    assert status.signals_sent[-1] == "SIGKILL"
    assert not _alive(runner.pid or 0)


@pytest.mark.asyncio
async def test_stop_is_cancelled_not_failed() -> None:
    """A runner stopped on request is cancelled, never blamed for the SIGTERM it was sent."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(inject("hang"))
        assert "running" in repr(runner)
        status = await runner.stop("enough")
    assert isinstance(status, RunnerCancelled)
    assert status.reason == "enough"
    assert status.signals_sent == ["SIGTERM"]
    assert (
        repr(runner)
        == f"<Runner {status.pid} {runner.name!r} cancelled: exited with signal SIGTERM>"
    )


@pytest.mark.asyncio
async def test_restarts_keep_every_attempt() -> None:
    """A failing runner is retried with backoff while the predicate allows, keeping each status."""
    policy = RestartPolicy(max_restarts=2, backoff=0.01, retry_if=lambda s: s.exit.code == 3)
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(inject("exit"), "3", restart=policy)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert [a.attempt for a in runner.attempts] == [1, 2, 3]
    assert len({a.pid for a in runner.attempts}) == 3


class Checkpoint(BaseModel):
    step: int


@pytest.mark.asyncio
async def test_user_events_are_typed(tmp_path: Path) -> None:
    """A user model emitted in the runner arrives as that model; unknown names stay UserEvent."""
    worker = tmp_path / "w.py"
    worker.write_text(
        "from pydantic import BaseModel\nfrom crashsight import runner\n"
        "class Checkpoint(BaseModel):\n    step: int\n"
        "class Other(BaseModel):\n    x: int\n"
        "def main():\n    runner.emit(Checkpoint(step=7))\n    runner.emit(Other(x=1))\n"
    )
    async with Supervisor(output="discard", user_events=[Checkpoint]) as supervisor:
        runner = await supervisor.spawn(f"{worker}:main")
        events = [e async for e in runner.events()]
    assert Checkpoint(step=7) in events
    assert any(isinstance(e, UserEvent) and e.name == "Other" for e in events)


@pytest.mark.asyncio
async def test_large_user_events_arrive_as_their_models() -> None:
    """Large events are written by orjson (crashsight.runner.modeljson), except what orjson
    would write otherwise than pydantic: each arrives as the model that was emitted."""
    models: list[type[BaseModel]] = [event_workers.Shard, event_workers.Bounds]
    async with Supervisor(output="discard", user_events=models) as supervisor:
        runner = await supervisor.spawn(f"{event_workers.__file__}:emit_large_events")
        events = [e async for e in runner.events() if isinstance(e, tuple(models))]
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    assert events == event_workers.LARGE_EVENTS


@pytest.mark.asyncio
async def test_plain_script_exception_arrives_through_hook(tmp_path: Path) -> None:
    """A plain `python script.py` (no bootstrap) still reports its exception over the channel."""
    script = tmp_path / "train.py"
    script.write_text("def step():\n    raise KeyError('missing column')\nstep()\n")
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command([sys.executable, str(script)])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.termination_error is not None
    assert status.termination_error.source == "channel"
    assert status.termination_error.type == "KeyError"
    assert status.termination_error.frames[-1].function == "step"


async def _signal_heartbeat(runner: Runner, beat: anyio.Event) -> None:
    """Consume the runner's events, setting ``beat`` at its first Heartbeat."""
    async for event in runner.events():
        if isinstance(event, Heartbeat):
            beat.set()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.asyncio
async def test_cancelled_while_waiting_for_runners_on_exit() -> None:
    """A cancellation that arrives while the block's exit waits for runners stops and reaps them."""
    with anyio.CancelScope() as scope:
        async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
            runner = await supervisor.spawn_command(["sleep", "30"])
            scope.cancel()  # delivered at the next wait: the block's exit, waiting for the runner
    assert scope.cancelled_caught
    status = runner.status
    assert isinstance(status, RunnerCancelled)
    assert status.exit.signal == "SIGTERM"
    assert not _alive(status.pid)


@pytest.mark.asyncio
async def test_spawn_after_exit_is_refused_before_anything_starts() -> None:
    """A supervisor whose block has ended refuses to spawn, and starts no process."""
    async with Supervisor(output="discard") as supervisor:
        pass
    with pytest.raises(RunnerStateError, match="spawn inside it"):
        await supervisor.spawn_command(["sleep", "30"])
    assert supervisor.runners == []


@pytest.mark.asyncio
@pytest.mark.skipif(sys.platform != "linux", reason="the channel owner is set by the Linux shim")
async def test_python_children_of_a_shell_runner_leave_the_channel_alone(tmp_path: Path) -> None:
    """Only the runner process writes to its channel: two Python children of a shell runner
    emitting at once cause no interleaved frames and no sequence errors."""
    worker = tmp_path / "w.py"
    worker.write_text(
        "from crashsight import runner\nfor i in range(300):\n    runner.progress('x' * 5000)\n"
    )
    script = f"{sys.executable} {worker} & {sys.executable} {worker}; wait"
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command(["bash", "-c", script])
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    assert status.protocol_issues == []
