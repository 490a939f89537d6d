"""Soak: hundreds of runners failing every way, 20 at a time, and nothing lost or leaked.

Every runner sends a known number of events and then dies by a randomly drawn injector. The test
proves that each gets exactly one final status with the expected verdict, that every event sent
before the death arrives (the kernel keeps what was written to the socket even after the writer
dies), and that the supervisor's open descriptors and memory come back to where they started.

``CRASHSIGHT_SOAK_RUNNERS`` raises the count for a longer run by hand (CI runs 200).
"""

from __future__ import annotations

import faulthandler
import gc
import os
import random
from dataclasses import dataclass

import anyio
import psutil
import pytest

from crashsight.protocol import Progress
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import SpawnOptions, Supervisor
from crashsight.testing.assertions import verdict_of

RUNNERS = int(os.environ.get("CRASHSIGHT_SOAK_RUNNERS", "200"))
CONCURRENCY = 20
EVENTS = 25


@dataclass(frozen=True)
class Kind:
    args: tuple[str, ...]
    verdict: str
    options: SpawnOptions | None = None


KINDS = [
    Kind(("segfault",), "crash/segfault"),
    Kind(("abort",), "crash/abort"),
    Kind(("bus_error",), "crash/bus_error"),
    Kind(("sigkill",), "crash/killed"),
    Kind(("exit", "3"), "unknown"),
    Kind(("exit", "0"), "succeeded"),
    Kind(("raise_", "ValueError", "bad shard"), "python/ValueError"),
    Kind(("enospc",), "disk/enospc"),
    Kind(("memory_error",), "memory/memory_error"),
    Kind(("emit_signature", "cuda.oom"), "gpu/oom"),
    Kind(("emit_signature", "ring.socket_errno"), "comm/ring_socket"),
    # The watchdogs count from the spawn, so their timeouts cover a start-up (and 25 events) on a
    # loaded 2-core machine running 20 runners at once: about 35 ms of CPU each (their progress
    # events load no pydantic), so 20 starts take under a second even with the cores busy.
    Kind(("hang",), "timeout/no_progress", SpawnOptions(no_progress_timeout=4.0)),
    Kind(("ignore_sigterm",), "timeout/deadline", SpawnOptions(deadline=6.0)),
    Kind(("stderr_flood", "200000"), "succeeded"),
    Kind(("garbage_frame",), "succeeded"),
    Kind(("close_channel",), "succeeded"),
    Kind(("leave_grandchild",), "succeeded"),
]


def _fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd")) if os.path.isdir("/proc") else 0


async def _soak(count: int, seed: int) -> list[str]:
    """Run ``count`` runners; return one line per broken promise (empty when all held)."""
    rng = random.Random(seed)
    drawn = [rng.choice(KINDS) for _ in range(count)]
    problems: list[str] = []
    limiter = anyio.Semaphore(CONCURRENCY)
    supervisor = Supervisor(output="discard", stop_policy=StopPolicy(grace=0.3), drain_timeout=1.0)

    async def one(index: int, kind: Kind) -> None:
        async with limiter:
            args = (*kind.args, "--after-events", str(EVENTS), "--task", f"t{index}")
            runner = await supervisor.spawn(
                "crashsight.testing.targets:" + args[0], *args[1:], **(kind.options or {})
            )
            events = [e async for e in runner.events()]
            status = await runner.wait()
        finals = [e for e in events if e is status]
        progress = [e for e in events if isinstance(e, Progress)]
        where = f"runner {index} ({' '.join(kind.args)})"
        if verdict_of(status) != kind.verdict:
            problems.append(f"{where}: expected {kind.verdict}, got {verdict_of(status)}")
        if len(finals) != 1 or len(runner.attempts) != 1:
            problems.append(f"{where}: {len(finals)} final statuses")
        if len(progress) != EVENTS or (status.protocol_issues and kind.args[0] != "garbage_frame"):
            problems.append(
                f"{where}: {len(progress)} of {EVENTS} events, {status.protocol_issues}"
            )

    async with supervisor, anyio.create_task_group() as tg:
        for index, kind in enumerate(drawn):
            tg.start_soon(one, index, kind)
    return problems


@pytest.fixture
def long_run_watchdog() -> None:
    """Move pytest's stack-dump watchdog (``faulthandler_timeout``, 50 s) out to 290 s.

    The soak runs most of a minute by design, under its own 300 s timeout; at 50 s the watchdog
    printed every thread's stack into a green run, which reads like a hang. pytest cancels the
    dump when the test ends, as it does its own.
    """
    faulthandler.cancel_dump_traceback_later()
    faulthandler.dump_traceback_later(290)


@pytest.mark.asyncio
@pytest.mark.timeout(300)
@pytest.mark.usefixtures("long_run_watchdog")
async def test_soak_every_runner_gets_one_correct_status_and_nothing_leaks() -> None:
    """200 runners, every injector, 20 at a time: right verdicts, all events, no leaked fds/RSS."""
    assert await _soak(CONCURRENCY, seed=1) == []  # warm-up: imports, caches, thread pools
    gc.collect()
    fds_before, rss_before = _fds(), psutil.Process().memory_info().rss
    assert await _soak(RUNNERS, seed=2) == []
    gc.collect()
    # Not "==": other tests' objects may be collected meanwhile and close descriptors of theirs.
    assert _fds() <= fds_before, "every pipe, socket and pidfd is closed"
    growth = psutil.Process().memory_info().rss - rss_before
    assert growth < 32 * 2**20, f"supervisor memory grew by {growth / 2**20:.1f} MiB"
