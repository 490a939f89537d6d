"""Benchmark 2: failure latency, from a child's death to `RunnerFailed` in the user's hands.

The child writes CLOCK_MONOTONIC to a file with one ``write`` just before it dies (CLOCK_MONOTONIC
is system-wide on Linux, so the parent's clock agrees), then dies by SIGKILL, an uncaught exception
or a segfault. The subject is the full path: the supervisor notices the exit, drains the streams,
classifies with diagnostics, and yields the `RunnerFailed` event. The baseline is the same child
started with a bare ``anyio.open_process(...)`` and awaited with ``.wait()``. Subject and baseline
deaths alternate, one at a time, so neither sees the other's load.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import anyio

from crashsight import RunnerFailed, Supervisor

from .common import BenchResult, Figure, Settings, alternating, child_env, percentile, python

__all__ = ["run"]

MODES = ("kill", "exception", "segfault")


def _died_at(path: Path) -> float:
    return int(path.read_text()) / 1e9


async def _crashsight(supervisor: Supervisor, mode: str, path: Path, seen: dict[str, int]) -> float:
    """Seconds from the child's death to the `RunnerFailed` event."""
    worker = await supervisor.spawn("benchmarks.workers:die", mode, str(path), env=child_env())
    async for event in worker.events():
        if isinstance(event, RunnerFailed):
            delivered = time.monotonic()
            verdict = f"{mode}: {event.category}/{event.subcategory}"
            seen[verdict] = seen.get(verdict, 0) + 1
            return delivered - _died_at(path)
    raise AssertionError(f"{mode}: no RunnerFailed event")


async def _bare(mode: str, path: Path) -> float:
    """Seconds from the same child's death to ``anyio.open_process(...).wait()`` returning."""
    async with await anyio.open_process(
        [python(), "-m", "benchmarks.workers", "die", mode, str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    ) as proc:
        await proc.wait()
        return time.monotonic() - _died_at(path)


async def _deaths(per_mode: int, folder: Path, seen: dict[str, int]) -> dict[str, list[float]]:
    """Both sides' latencies, deaths alternating, under one long-lived supervisor and event loop.

    A supervisor lives as long as its program: starting one per death measured nothing more and
    doubled the benchmark's time.
    """
    values: dict[str, list[float]] = {"crashsight": [], "bare": []}
    async with Supervisor(output="discard") as supervisor:
        for mode in MODES:
            path = folder / f"{mode}.ts"
            sides = {
                "crashsight": partial(_crashsight, supervisor, mode, path, seen),
                "bare": partial(_bare, mode, path),
            }
            for name in alternating(list(sides), per_mode):
                values[name].append(await sides[name]())
    return values


def run(settings: Settings) -> BenchResult:
    """Compare p50 and p99 latency over at least 200 deaths per side (quick: a handful)."""
    per_mode = 3 if settings.quick else 70
    result = BenchResult(
        "failure", f"Failure latency: death -> RunnerFailed ({per_mode * len(MODES)} deaths)"
    )
    seen: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="crashsight-bench-") as tmp:
        values = anyio.run(_deaths, per_mode, Path(tmp), seen)
    subject, baseline = values["crashsight"], values["bare"]
    detail: dict[str, object] = {
        "deaths_per_side": len(subject),
        "verdicts": seen,
        "p50_ms_crashsight": round(percentile(subject, 50) * 1e3, 2),
        "p50_ms_bare": round(percentile(baseline, 50) * 1e3, 2),
        "p99_ms_crashsight": round(percentile(subject, 99) * 1e3, 2),
        "p99_ms_bare": round(percentile(baseline, 99) * 1e3, 2),
    }
    p50 = percentile(subject, 50) / percentile(baseline, 50)
    p99 = percentile(subject, 99) / percentile(baseline, 99)
    result.figures.append(
        Figure("p50 latency vs bare open_process().wait()", p50, "x the time", None, None, detail)
    )
    result.figures.append(
        Figure(
            "p99 latency vs bare open_process().wait()",
            p99,
            "x the time",
            "<= 1.5",
            p99 <= 1.5,
            detail,
        )
    )
    result.checks["every death delivered a RunnerFailed"] = sum(seen.values()) == len(subject)
    return result
