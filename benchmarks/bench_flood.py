"""Benchmark 4: the supervisor's memory while a child floods stderr with 1 GiB.

Each measurement runs in a fresh interpreter (``python -m benchmarks.bench_flood MODE NBYTES``) so
that the resident set starts clean and nothing of an earlier benchmark is counted. A thread samples
the process's RSS every 10 ms; growth is the peak minus the RSS just before the child starts.
The subject supervises the child (stderr matched against the full catalogue, then discarded); the
baseline reads the same child's stderr through a bare ``anyio.open_process`` pipe and discards it.
Memory is not time, so the target is on the subject's own growth; the flood's duration is reported
as a ratio.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
from functools import partial

import anyio
import psutil

from .common import BenchResult, Figure, Settings, child_env, interleave, python

__all__ = ["run"]

_MIB = 1 << 20


class _RssSampler:
    """Samples this process's RSS in a daemon thread; `peak` is the largest seen."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def _subject(nbytes: int) -> tuple[int, float]:
    from crashsight import RunnerSucceeded, Supervisor

    async with Supervisor(output="discard") as supervisor:
        gc.collect()
        before = psutil.Process().memory_info().rss
        sampler = _RssSampler()
        start = time.perf_counter()
        worker = await supervisor.spawn("benchmarks.workers:flood", str(nbytes), env=child_env())
        status = await worker.wait()
        elapsed = time.perf_counter() - start
        peak = sampler.stop()
    if not isinstance(status, RunnerSucceeded):
        raise RuntimeError(f"the flooding worker did not succeed: {status.status}")
    return peak - before, elapsed


async def _bare(nbytes: int) -> tuple[int, float]:
    gc.collect()
    before = psutil.Process().memory_info().rss
    sampler = _RssSampler()
    start = time.perf_counter()
    async with await anyio.open_process(
        [python(), "-m", "benchmarks.workers", "flood", str(nbytes)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=child_env(),
    ) as proc:
        assert proc.stderr is not None
        async for _ in proc.stderr:
            pass
        await proc.wait()
    elapsed = time.perf_counter() - start
    return sampler.stop() - before, elapsed


def _measure(mode: str, nbytes: int) -> tuple[int, float]:
    """Run one flood in a fresh interpreter; return (RSS growth in bytes, seconds)."""
    out = subprocess.run(
        [python(), "-m", "benchmarks.bench_flood", mode, str(nbytes)],
        capture_output=True,
        check=True,
        env=child_env(),
        timeout=600,
    )
    data = json.loads(out.stdout)
    return int(data["growth"]), float(data["seconds"])


def run(settings: Settings) -> BenchResult:
    """Measure RSS growth under a 1 GiB stderr flood (quick: 16 MiB)."""
    nbytes = (16 * _MIB) if settings.quick else (1024 * _MIB)
    rounds = settings.rounds(full=2)
    result = BenchResult(
        "flood", f"Supervisor memory while a child writes {nbytes // _MIB} MiB to stderr"
    )
    growth: dict[str, list[float]] = {"crashsight": [], "bare": []}

    def one(mode: str) -> float:
        grown, seconds = _measure(mode, nbytes)
        growth[mode].append(grown)
        return seconds

    times = interleave(
        {"crashsight": partial(one, "crashsight"), "bare": partial(one, "bare")}, rounds
    )
    worst = max(growth["crashsight"]) / _MIB
    detail: dict[str, object] = {
        "rounds": rounds,
        "rss_growth_MiB_crashsight": [round(g / _MIB, 1) for g in growth["crashsight"]],
        "rss_growth_MiB_bare": [round(g / _MIB, 1) for g in growth["bare"]],
    }
    result.figures.append(
        Figure(
            "peak RSS growth (MiB, absolute: memory is not noisy like time)",
            worst,
            "MiB",
            "< 50",
            worst < 50,
            detail,
        )
    )
    from .common import median_ratio

    result.figures.append(
        Figure(
            "flood duration vs bare pipe reader",
            median_ratio(times["crashsight"], times["bare"]),
            "x the time",
            detail=detail,
        )
    )
    return result


def _main(mode: str, nbytes: int) -> None:
    grown, seconds = anyio.run(_subject if mode == "crashsight" else _bare, nbytes)
    json.dump({"growth": grown, "seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]))
