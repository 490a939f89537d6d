"""Benchmark 2: failure latency, from a child's death to `RunnerFailed` in the user's hands.

The child writes CLOCK_MONOTONIC to a file with one ``write`` just before it dies (CLOCK_MONOTONIC
is system-wide on Linux, so the parent's clock agrees), then dies by SIGKILL, an uncaught exception
or a segfault. The subject is the full path: the supervisor notices the exit, drains the streams,
classifies with diagnostics, and yields the `RunnerFailed` event. The baseline is the same child
started with a bare ``anyio.open_process(...)`` and awaited with ``.wait()``.

Each round starts one subject and one baseline child together, so their interpreters start on both
cores at once (the start-up is most of the benchmark's time and none of what it measures). Each
child then waits at a FIFO of its own; once both wait there, they are let die one at a time,
alternating which goes first, so neither death is measured under the other's load.
"""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from crashsight import RunnerFailed, Supervisor

from .common import BenchResult, Figure, Settings, child_env, percentile, python

__all__ = ["run"]

MODES = ("kill", "exception", "segfault")

#: How long a child may take to reach its gate: far more than an interpreter start.
_GATE_TIMEOUT_S = 60.0


def _died_at(path: Path) -> float:
    return int(path.read_text()) / 1e9


@dataclass(frozen=True)
class _Child:
    """A started child: whether it has ended yet, and its death's latency once let through."""

    ended: Callable[[], bool]
    latency: Callable[[], Awaitable[float]]


async def _crashsight(
    supervisor: Supervisor, mode: str, folder: Path, seen: dict[str, int]
) -> _Child:
    """Start the subject child, timed to the `RunnerFailed` event."""
    path = folder / "crashsight.ts"
    args = (mode, str(path), str(folder / "crashsight.gate"))
    worker = await supervisor.spawn("benchmarks.workers:die", *args, env=child_env())

    async def latency() -> float:
        async for event in worker.events():
            if isinstance(event, RunnerFailed):
                delivered = time.monotonic()
                verdict = f"{mode}: {event.category}/{event.subcategory}"
                seen[verdict] = seen.get(verdict, 0) + 1
                return delivered - _died_at(path)
        raise AssertionError(f"{mode}: no RunnerFailed event")

    return _Child(lambda: worker.status is not None, latency)


async def _open_gate(gate: Path, ended: Callable[[], bool]) -> int:
    """The FIFO's write end, opened once its child waits at the other end.

    Raises:
        AssertionError: The child ended before it reached the gate.
        OSError: It did not reach the gate within `_GATE_TIMEOUT_S`.
    """
    deadline = time.monotonic() + _GATE_TIMEOUT_S
    while True:
        try:
            return os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
        if ended():
            raise AssertionError(f"the child of {gate.name} ended before it reached the gate")
        await anyio.sleep(0.002)


async def _round(
    supervisor: Supervisor, mode: str, folder: Path, bare_first: bool, seen: dict[str, int]
) -> dict[str, float]:
    """One death a side: both children started together, then let die one at a time."""
    subject = await _crashsight(supervisor, mode, folder, seen)
    argv = [
        "-m",
        "benchmarks.workers",
        "die",
        mode,
        str(folder / "bare.ts"),
        str(folder / "bare.gate"),
    ]
    bare = await anyio.open_process(
        [python(), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )

    async def bare_latency() -> float:
        await bare.wait()
        return time.monotonic() - _died_at(folder / "bare.ts")

    children = {
        "crashsight": subject,
        "bare": _Child(lambda: bare.returncode is not None, bare_latency),
    }
    gates: dict[str, int] = {}
    try:
        for side, child in children.items():
            gates[side] = await _open_gate(folder / f"{side}.gate", child.ended)
        values: dict[str, float] = {}
        for side in reversed(children) if bare_first else children:
            os.write(gates[side], b"x")
            values[side] = await children[side].latency()
        return values
    finally:
        for fd in gates.values():
            os.close(fd)
        if bare.returncode is None:  # a failed round: its supervisor stops the other child
            bare.kill()
        await bare.aclose()


async def _deaths(per_mode: int, folder: Path, seen: dict[str, int]) -> dict[str, list[float]]:
    """Both sides' latencies, under one long-lived supervisor and event loop.

    A supervisor lives as long as its program: starting one per death measured nothing more and
    doubled the benchmark's time.
    """
    values: dict[str, list[float]] = {"crashsight": [], "bare": []}
    for side in values:
        os.mkfifo(folder / f"{side}.gate")
    async with Supervisor(output="discard") as supervisor:
        for mode in MODES:
            for i in range(per_mode):
                done = await _round(supervisor, mode, folder, i % 2 == 1, seen)
                for side, value in done.items():
                    values[side].append(value)
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
