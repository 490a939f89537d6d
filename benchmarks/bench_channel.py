"""Benchmark 1: event throughput from child to supervisor, vs multiprocessing's Queue and Pipe.

All three carry the same pydantic `BenchEvent`, serialised the usual way: crashsight's
``runner.emit`` (a `UserEvent` frame, validated back into the user's model on the supervisor side),
and for the baselines ``model_dump_json`` in the child and ``model_validate_json`` in the parent.
Throughput is counted from the first event received to the last, so process start-up is not in
it; every run checks that the sequence numbers arrive complete and in order.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import queue as queue_module
import statistics
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection

import anyio

from crashsight import Supervisor

from .common import (
    BenchResult,
    Figure,
    Settings,
    child_env,
    interleave,
    median_ratio,
    round_ratios,
)
from .workers import BenchEvent, mp_pipe_child, mp_queue_child

__all__ = ["run"]

_CTX = multiprocessing.get_context("spawn")


class _Lost(Exception):
    """Events went missing or came out of order: a correctness failure, not a slow run."""


def _crashsight(n: int, size: int) -> float:
    """Events/s through a supervised runner's channel."""

    async def main() -> float:
        first = last = 0.0
        expected = 0
        async with Supervisor(output="discard", user_events=[BenchEvent]) as supervisor:
            worker = await supervisor.spawn(
                "benchmarks.workers:emit_events", str(n), str(size), env=child_env()
            )
            async for event in worker.events():
                if isinstance(event, BenchEvent):
                    if event.seq != expected:
                        raise _Lost(f"crashsight: expected event {expected}, got {event.seq}")
                    if expected == 0:
                        first = time.perf_counter()
                    expected += 1
                    last = time.perf_counter()
            status = await worker.wait()
        if expected != n or status.status != "succeeded":
            raise _Lost(f"crashsight: received {expected} of {n} events, status {status.status}")
        return (n - 1) / (last - first)

    return anyio.run(main)


def _queue(n: int, size: int) -> float:
    """Events/s through a `multiprocessing.Queue` of JSON strings."""
    queue: multiprocessing.Queue[str] = _CTX.Queue()
    proc = _CTX.Process(target=mp_queue_child, args=(queue, n, size))
    proc.start()
    try:
        return _receive_rate("Queue", n, lambda: _get(queue, proc))
    finally:
        _reap(proc)
        queue.close()


def _receive_rate(label: str, n: int, receive: Callable[[], str | bytes]) -> float:
    """Events/s of ``n`` events from ``receive``, timed from the first; every seq checked."""
    first = time.perf_counter()
    for i in range(n):
        event = BenchEvent.model_validate_json(receive())
        if i == 0:
            first = time.perf_counter()
        if event.seq != i:
            raise _Lost(f"{label}: expected event {i}, got {event.seq}")
    return (n - 1) / (time.perf_counter() - first)


def _reap(proc: multiprocessing.process.BaseProcess) -> None:
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
        proc.join()


def _get(queue: multiprocessing.Queue[str], proc: multiprocessing.process.BaseProcess) -> str:
    """The next item, or `_Lost` once the child is gone and the queue stays empty."""
    while True:
        try:
            return queue.get(timeout=1.0)
        except queue_module.Empty:
            if not proc.is_alive():
                raise _Lost(f"Queue: the child exited ({proc.exitcode}) early") from None


def _pipe(n: int, size: int) -> float:
    """Events/s through a one-way `multiprocessing.Pipe` of JSON bytes."""
    receiver: Connection
    sender: Connection
    receiver, sender = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=mp_pipe_child, args=(sender, n, size))
    proc.start()
    sender.close()
    try:
        return _receive_rate("Pipe", n, receiver.recv_bytes)
    finally:
        _reap(proc)
        receiver.close()


def run(settings: Settings) -> BenchResult:
    """Compare events/s at 100-byte and 10-KiB payloads; see the module docstring."""
    n = 2_000 if settings.quick else 100_000
    # Five rounds, not three: at 100 B one round's ratio ranged 2.1-3.2x the Queue's in one run,
    # and the median of three moved the verdict from run to run (measured).
    rounds = settings.rounds(full=5)
    result = BenchResult("channel", f"Event channel throughput ({n:,} events, child -> parent)")
    no_loss = True
    for size, label in ((100, "100 B"), (10 * 1024, "10 KiB")):
        try:
            values = interleave(
                {
                    "crashsight": partial(_crashsight, n, size),
                    "queue": partial(_queue, n, size),
                    "pipe": partial(_pipe, n, size),
                },
                rounds,
            )
        except _Lost as exc:
            no_loss = False
            result.notes.append(str(exc))
            continue
        detail: dict[str, object] = {
            f"median_events_per_s_{k}": round(statistics.median(v)) for k, v in values.items()
        }
        detail["rounds"] = rounds
        for baseline in ("queue", "pipe"):  # the spread behind each median, for the record
            ratios = round_ratios(values["crashsight"], values[baseline])
            detail[f"round_ratios_vs_{baseline}"] = [round(r, 2) for r in ratios]
        vs_queue = median_ratio(values["crashsight"], values["queue"])
        vs_pipe = median_ratio(values["crashsight"], values["pipe"])
        result.figures.append(
            Figure(
                f"events/s vs multiprocessing.Queue ({label})",
                vs_queue,
                "x the Queue's rate",
                ">= 2.5",
                vs_queue >= 2.5,
                detail,
            )
        )
        result.figures.append(
            Figure(
                f"events/s vs multiprocessing.Pipe ({label})",
                vs_pipe,
                "x the Pipe's rate",
                ">= 0.8",
                vs_pipe >= 0.8,
                detail,
            )
        )
    result.checks["zero events lost (sequence numbers complete, in order)"] = no_loss
    return result
