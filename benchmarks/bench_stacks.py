"""Benchmark 8: what taking the stacks costs a stop, and what the stack hook costs a start.

Before crashsight stops a runner it sends the dump signal to every Python process of the tree and
waits, bounded (1 s by default), for their dumps. The subject is `Runner.stop` of a worker hung in
``time.sleep`` with stacks on (the default); the baseline is the same stop with ``stacks=None``.
A worker that blocks every signal cannot answer: its stop costs the whole bounded wait, which the
second figure shows. The third is the start-up cost the hook adds to every Python process of a
runner's tree (it opens its dump file and registers faulthandler), against the same interpreter
outside a runner.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from functools import partial

import anyio
import psutil

from crashsight import Heartbeat, Ready, StackOptions, StopPolicy, Supervisor
from crashsight.runner.stackdump import STACKS_DIR_ENV

from .common import BenchResult, Figure, Settings, child_env, interleave, median_ratio, python

__all__ = ["run"]

#: Both sides stop with this grace: a worker blocking SIGTERM is killed after it.
_GRACE_S = 0.2
_HUNG = "crashsight.testing.targets:hang"
_UNANSWERING = "benchmarks.workers:hang_unanswering"


def _stop_seconds(target: str, stacks: StackOptions | None, found: list[bool]) -> float:
    """Seconds ``Runner.stop`` takes on a worker of ``target`` that is blocked in a sleep."""

    async def main() -> float:
        async with Supervisor(
            output="discard", stacks=stacks, stop_policy=StopPolicy(grace=_GRACE_S)
        ) as supervisor:
            runner = await supervisor.spawn(target, env=child_env())
            async for event in runner.events():
                if isinstance(event, Heartbeat if target == _HUNG else Ready):
                    break
            assert runner.pid is not None
            await _until_asleep(runner.pid, exec_of_python=target == _UNANSWERING)
            start = time.perf_counter()
            status = await runner.stop("benchmark")
            elapsed = time.perf_counter() - start
        if stacks is not None:
            found.append(status.blocked_in is not None)
        return elapsed

    return anyio.run(main)


async def _until_asleep(pid: int, *, exec_of_python: bool) -> None:
    proc = psutil.Process(pid)

    def asleep() -> bool:
        settled = not exec_of_python or "-c" in proc.cmdline()
        return settled and proc.status() == psutil.STATUS_SLEEPING

    with anyio.fail_after(30):
        while not asleep():  # noqa: ASYNC110 - a process state has no event to wait on
            await anyio.sleep(0.005)


def _start_seconds(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([python(), "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def run(settings: Settings) -> BenchResult:
    """Median ratios over interleaved rounds (quick: one round each)."""
    rounds = settings.rounds(15)
    # A worker that cannot answer costs the whole bounded wait every time: a few rounds show it.
    unanswered_rounds = settings.rounds(5)
    result = BenchResult(
        "stacks", f"Stacks before a stop ({rounds} rounds, {unanswered_rounds} unanswered)"
    )
    answered: list[bool] = []
    unanswered: list[bool] = []
    on = StackOptions()
    for name, target, found, rounds_here in (
        ("a hung worker", _HUNG, answered, rounds),
        (
            "a worker blocking every signal (the whole bounded wait)",
            _UNANSWERING,
            unanswered,
            unanswered_rounds,
        ),
    ):
        values = interleave(
            {
                "stacks": partial(_stop_seconds, target, on, found),
                "none": partial(_stop_seconds, target, None, []),
            },
            rounds_here,
        )
        ratio = median_ratio(values["stacks"], values["none"])
        extra = [s - n for s, n in zip(values["stacks"], values["none"], strict=True)]
        detail: dict[str, object] = {
            "median_ms_with_stacks": round(statistics.median(values["stacks"]) * 1e3, 1),
            "median_ms_without": round(statistics.median(values["none"]) * 1e3, 1),
            "median_extra_ms": round(statistics.median(extra) * 1e3, 1),
            "wait_s": on.wait,
        }
        result.figures.append(
            Figure(
                f"stop of {name}: stacks first vs stacks=None",
                ratio,
                "x the time",
                None,
                None,
                detail,
            )
        )
    with tempfile.TemporaryDirectory(prefix="crashsight-bench-stacks-") as folder:
        starts = interleave(
            {
                "hook": partial(_start_seconds, child_env({STACKS_DIR_ENV: folder})),
                "plain": partial(_start_seconds, child_env()),
            },
            settings.rounds(30, quick=3),
        )
    result.figures.append(
        Figure(
            "python -c pass in a runner's tree (stack hook) vs outside one",
            median_ratio(starts["hook"], starts["plain"]),
            "x the time",
            detail={
                "median_ms_hook": round(statistics.median(starts["hook"]) * 1e3, 1),
                "median_ms_plain": round(statistics.median(starts["plain"]) * 1e3, 1),
            },
        )
    )
    result.checks["every stop of a hung worker carried blocked_in"] = bool(answered) and all(
        answered
    )
    result.checks["a worker that cannot answer was stopped anyway"] = (
        len(unanswered) == unanswered_rounds
    )
    return result
