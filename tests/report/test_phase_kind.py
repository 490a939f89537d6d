"""A run report says which kind of work failed, from the error's frames or the stuck thread."""

from __future__ import annotations

import sys

import pytest

from crashsight import Report, RunnerFailed, Supervisor

RAISES_IN_EVALUATE = """
def evaluate():
    raise ValueError("metric got NaN")

def main():
    for step in range(3):
        pass
    evaluate()

main()
"""

HANGS_IN_TRAINING_STEP = """
import sys, time

def training_step():
    print("step started", file=sys.stderr, flush=True)
    time.sleep(3600)

training_step()
"""


@pytest.mark.asyncio
async def test_an_error_raised_in_evaluate_is_evaluation() -> None:
    """The termination error's innermost known frame (`evaluate`) names the kind of work."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", RAISES_IN_EVALUATE])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert Report.from_status(status).phase_kind == "evaluation"


@pytest.mark.asyncio
async def test_a_hang_in_training_step_is_training() -> None:
    """Without an error, the stuck thread's stack (collected before the stop) names it."""
    # The timeout covers the start to the first line on a loaded machine (about 30 ms on a quiet one).
    async with Supervisor(output="discard", no_progress_timeout=3) as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", HANGS_IN_TRAINING_STEP])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.timeout == "no_progress"
    report = Report.from_status(status)
    assert report.blocked_in is not None
    assert report.blocked_in.function == "training_step"
    assert report.phase_kind == "training"
