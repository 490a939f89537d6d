"""The crash-case table: every way a runner can end, through the real supervisor.

Each case runs a real child that really fails (a real SIGSEGV, a real SIGKILL, ...), made by an
injector of `crashsight.testing`, and checks the final status, the exit fields, the verdict and the
order of the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel

from crashsight.protocol import Ready, RunnerTerminationError
from crashsight.supervisor.status import ErrorChunk, RunnerFailed, RunnerSucceeded
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import SpawnOptions, Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "workers.py"
INJECT = "crashsight.testing.targets:"


@dataclass(frozen=True)
class Case:
    target: str
    verdict: str | None
    args: tuple[str, ...] = ()
    code: int | None = None
    signal: str | None = None
    in_flight: list[str] = field(default_factory=list)
    options: SpawnOptions = field(default_factory=lambda: SpawnOptions())


EXCEPTION = Case(
    f"{INJECT}raise_", "python/ValueError", ("ValueError", "bad shard 3", "--task", "t-1"), code=1
)
CASES = [
    pytest.param(Case(f"{WORKERS}:succeed", None, code=0), id="success"),
    pytest.param(EXCEPTION, id="exception"),
    pytest.param(
        Case(f"{INJECT}exit", "unknown", ("3", "--after-events", "1"), code=3), id="os-exit-3"
    ),
    pytest.param(
        Case(
            f"{INJECT}segfault",
            "crash/segfault",
            ("--task", "shard-7"),
            signal="SIGSEGV",
            in_flight=["shard-7"],
        ),
        id="segfault",
    ),
    pytest.param(Case(f"{INJECT}abort", "crash/abort", signal="SIGABRT"), id="abort"),
    pytest.param(
        Case(
            f"{INJECT}sigkill",
            "crash/killed",
            ("--task", "a", "--task", "b"),
            signal="SIGKILL",
            in_flight=["a", "b"],
        ),
        id="sigkill",
    ),
    pytest.param(
        Case(
            f"{INJECT}hang",
            "timeout/no_progress",
            signal="SIGTERM",
            # Long enough for a cold start on a loaded machine (about 30 ms on a quiet one): Ready
            # must come first.
            options=SpawnOptions(no_progress_timeout=3.0),
        ),
        id="hang-no-progress",
    ),
    pytest.param(
        Case(
            f"{INJECT}hang",
            "timeout/deadline",
            ("--heartbeat-interval", "0.05"),
            signal="SIGTERM",
            options=SpawnOptions(deadline=3.0, no_progress_timeout=10.0),
        ),
        id="busy-deadline",
    ),
]


async def _run(
    case: Case, preload: tuple[str, ...] = ()
) -> tuple[list[BaseModel], RunnerFailed | RunnerSucceeded]:
    async with Supervisor(
        output="discard", stop_policy=StopPolicy(grace=2.0), preload=preload
    ) as supervisor:
        runner = await supervisor.spawn(case.target, *case.args, **case.options)
        events = [event async for event in runner.events()]
        status = await runner.wait()
    assert isinstance(status, RunnerFailed | RunnerSucceeded)
    return events, status


#: The cases a fork-server runner goes through too: one of each way to end.
FORKED = ("exception", "os-exit-3", "segfault", "sigkill")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "preload"),
    [
        *(pytest.param(p.values[0], (), id=p.id) for p in CASES),
        *(
            pytest.param(p.values[0], ("json",), id=f"forked-{p.id}")
            for p in CASES
            if p.id in FORKED
        ),
    ],
)
async def test_crash_case(case: Case, preload: tuple[str, ...]) -> None:
    """The final status, exit fields and verdict match what really happened to the child.

    With ``preload``, the runner is forked from a fork server instead of started cold, and
    everything must come out the same.
    """
    events, status = await _run(case, preload)
    assert isinstance(events[0], Ready)
    assert events[-1] == status
    assert status.exit.code == case.code
    assert status.exit.signal == case.signal
    if case.verdict is None:
        assert isinstance(status, RunnerSucceeded)
        return
    assert isinstance(status, RunnerFailed)
    verdict = status.category + (f"/{status.subcategory}" if status.subcategory else "")
    assert verdict == case.verdict, status.summary
    assert status.summary.startswith(f"{verdict}: ")
    assert status.tasks.in_flight == case.in_flight
    chunks = [e for e in events if isinstance(e, ErrorChunk)]
    assert [c.task_id for c in chunks] == case.in_flight
    assert events[-1 - len(chunks) : -1] == chunks, "ErrorChunks come right before RunnerFailed"
    if case.signal == "SIGTERM":
        assert status.signals_sent == ["SIGTERM"], "the watchdog's own signal is on record"


@pytest.mark.asyncio
async def test_exception_arrives_structured() -> None:
    """An exception in the target arrives as a RunnerTerminationError with frames and phase."""
    events, status = await _run(EXCEPTION)
    errors = [e for e in events if isinstance(e, RunnerTerminationError)]
    assert len(errors) == 1
    error = errors[0]
    assert (error.type, error.message, error.phase) == ("ValueError", "bad shard 3", "target")
    assert error.frames[-1].function == "raise_", "the innermost frame is the one that raised"
    assert isinstance(status, RunnerFailed)
    assert status.termination_error is not None
    assert status.termination_error.source == "channel"
    assert status.tasks.failed[0].task_id == "t-1"
    assert status.tasks.failed[0].error == "ValueError: bad shard 3"
    assert any("ValueError: bad shard 3" in line for line in status.stderr_tail)


@pytest.mark.asyncio
async def test_import_error_is_bootstrap_phase(tmp_path: Path) -> None:
    """A target whose module fails to import fails in phase 'bootstrap', with the real error."""
    broken = tmp_path / "broken.py"
    broken.write_text("import json\nraise RuntimeError('config missing at import')\n")
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{broken}:main")
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 1
    assert status.termination_error is not None
    assert status.termination_error.phase == "bootstrap"
    assert status.termination_error.message == "config missing at import"
    assert (status.category, status.subcategory) == ("python", "RuntimeError")
