"""Benchmark 7: 200 concurrent runners, each emitting 1,000 events and then failing.

Everything must come out right under load: every runner's events complete and in order, and every
final status a `RunnerFailed` blaming the ``RuntimeError`` the worker raised. Reported: wall time
and the supervisor's CPU time per runner (this process's user+system time, which is where the
supervisor runs), each as a ratio against the same workload on `multiprocessing` processes and
one shared Queue, which is what a user would otherwise write.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import resource
import time
from functools import partial

import anyio

from crashsight import RunnerFailed, Supervisor

from .common import BenchResult, Figure, Settings, child_env, interleave, median_ratio
from .workers import BenchEvent, mp_emit_then_fail

__all__ = ["run"]

_CTX = multiprocessing.get_context("spawn")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _crashsight(runners: int, events: int, cpu: list[float], problems: list[str]) -> float:
    """Wall seconds for the whole fleet under one supervisor; appends CPU seconds to ``cpu``."""

    async def consume(worker_index: int, worker: object) -> None:
        from crashsight.supervisor.runner import Runner

        assert isinstance(worker, Runner)
        expected = 0
        final = None
        async for event in worker.events():
            if isinstance(event, BenchEvent):
                if event.seq != expected:
                    problems.append(
                        f"runner {worker_index}: event {event.seq}, expected {expected}"
                    )
                expected = event.seq + 1
            elif isinstance(event, RunnerFailed):
                final = event
        if expected != events:
            problems.append(f"runner {worker_index}: {expected} of {events} events")
        termination = None if final is None else final.termination_error
        if final is None or termination is None or termination.type != "RuntimeError":
            problems.append(f"runner {worker_index}: wrong final status {final!r:.200}")

    async def main() -> None:
        env = child_env()
        async with (
            Supervisor(output="discard", user_events=[BenchEvent]) as supervisor,
            anyio.create_task_group() as tg,
        ):
            for i in range(runners):
                worker = await supervisor.spawn(
                    "benchmarks.workers:emit_then_fail", str(events), env=env
                )
                tg.start_soon(consume, i, worker)

    cpu_start, start = _cpu(), time.perf_counter()
    anyio.run(main)
    cpu.append(_cpu() - cpu_start)
    return time.perf_counter() - start


def _multiprocessing(runners: int, events: int, cpu: list[float], problems: list[str]) -> float:
    """The same fleet as `multiprocessing` processes reporting on one shared Queue."""
    cpu_start, start = _cpu(), time.perf_counter()
    shared: multiprocessing.Queue[tuple[int, str]] = _CTX.Queue()
    procs = [
        _CTX.Process(target=mp_emit_then_fail, args=(shared, i, events)) for i in range(runners)
    ]
    for proc in procs:
        proc.start()
    expected = [0] * runners
    try:
        for _ in range(runners * events):
            try:
                index, raw = shared.get(timeout=30)
            except queue_module.Empty:
                problems.append("multiprocessing: the queue stayed empty for 30 s")
                break
            seq = BenchEvent.model_validate_json(raw).seq
            if seq != expected[index]:
                problems.append(f"multiprocessing {index}: event {seq}, expected {expected[index]}")
            expected[index] = seq + 1
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
        shared.close()
    problems.extend(
        f"multiprocessing {i}: exit code {p.exitcode}"
        for i, p in enumerate(procs)
        if p.exitcode != 1
    )
    cpu.append(_cpu() - cpu_start)
    return time.perf_counter() - start


def run(settings: Settings) -> BenchResult:
    """Run the fleet under crashsight and under multiprocessing, alternately."""
    runners, events = (10, 100) if settings.quick else (200, 1_000)
    rounds = settings.rounds(full=2)
    result = BenchResult("scale", f"{runners} concurrent runners x {events:,} events, then failure")
    cpu: dict[str, list[float]] = {"crashsight": [], "multiprocessing": []}
    problems: dict[str, list[str]] = {"crashsight": [], "multiprocessing": []}
    wall = interleave(
        {
            "crashsight": partial(
                _crashsight, runners, events, cpu["crashsight"], problems["crashsight"]
            ),
            "multiprocessing": partial(
                _multiprocessing,
                runners,
                events,
                cpu["multiprocessing"],
                problems["multiprocessing"],
            ),
        },
        rounds,
    )
    detail: dict[str, object] = {
        "rounds": rounds,
        "runners": runners,
        "events_per_runner": events,
        "supervisor_cpu_ms_per_runner": [round(c / runners * 1e3, 2) for c in cpu["crashsight"]],
        "multiprocessing_parent_cpu_ms_per_process": [
            round(c / runners * 1e3, 2) for c in cpu["multiprocessing"]
        ],
    }
    result.figures.append(
        Figure(
            "wall time vs multiprocessing + Queue",
            median_ratio(wall["crashsight"], wall["multiprocessing"]),
            "x the time",
            detail=detail,
        )
    )
    result.figures.append(
        Figure(
            "supervisor CPU per runner vs multiprocessing parent",
            median_ratio(cpu["crashsight"], cpu["multiprocessing"]),
            "x the CPU",
            detail=detail,
        )
    )
    result.checks[
        "every final status RunnerFailed(RuntimeError), every event received in order"
    ] = not problems["crashsight"]
    result.notes.extend(problems["crashsight"][:5] + problems["multiprocessing"][:5])
    return result
