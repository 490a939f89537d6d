"""The child side of every benchmark: targets for crashsight runners and for the baselines.

Subject and baseline children do the same work; only the way they report differs (crashsight's
channel, a `multiprocessing` Queue or Pipe, or nothing at all for a bare process). Kept apart from
the measuring code so that a child imports only what it needs: this module, pydantic and
``crashsight.runner``.

Also runnable as ``python -m benchmarks.workers die MODE PATH GATE`` for the bare-process baseline
of the failure-latency benchmark.
"""

from __future__ import annotations

import faulthandler
import fcntl
import importlib
import os
import resource
import signal
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.queues import Queue

from pydantic import BaseModel

from crashsight import runner

__all__ = [
    "BenchEvent",
    "die",
    "emit_events",
    "emit_then_fail",
    "flood",
    "gather_then_fail",
    "hang_unanswering",
    "mp_emit_then_fail",
    "mp_gather_then_fail",
    "mp_pipe_child",
    "mp_queue_child",
    "mp_ready_child",
    "payload_of",
    "ready_after_torch",
]


class BenchEvent(BaseModel):
    """The event every throughput benchmark carries: a sequence number and a payload."""

    seq: int
    payload: str


def payload_of(size: int) -> str:
    """An ASCII payload of ``size`` characters, so the JSON is about ``size`` bytes too."""
    return ("0123456789abcdef" * (size // 16 + 1))[:size]


def emit_events() -> None:
    """crashsight runner target: ``emit_events N SIZE`` emits N `BenchEvent` through the channel."""
    n, size = int(sys.argv[1]), int(sys.argv[2])
    payload = payload_of(size)
    for i in range(n):
        runner.emit(BenchEvent(seq=i, payload=payload))


def mp_queue_child(queue: Queue[str], n: int, size: int) -> None:
    """Baseline child: the same events as JSON strings on a `multiprocessing.Queue`."""
    payload = payload_of(size)
    for i in range(n):
        queue.put(BenchEvent(seq=i, payload=payload).model_dump_json())
    queue.close()
    queue.join_thread()


def mp_pipe_child(conn: Connection, n: int, size: int) -> None:
    """Baseline child: the same events as JSON bytes on a `multiprocessing.Pipe`."""
    payload = payload_of(size)
    for i in range(n):
        conn.send_bytes(BenchEvent(seq=i, payload=payload).model_dump_json().encode())
    conn.close()


def mp_ready_child(conn: Connection, torch: bool) -> None:
    """Baseline child of the spawn benchmark: (import torch, then) say so on a Pipe."""
    if torch:
        importlib.import_module("torch")  # importing is the work measured

    conn.send_bytes(b"ready")
    conn.close()


def ready_after_torch() -> None:
    """crashsight runner target: import torch, then send a heartbeat: the worker is ready."""
    importlib.import_module("torch")  # importing is the work measured
    runner.heartbeat()


def die() -> None:
    """crashsight runner target: ``die MODE PATH GATE``; see `_die`."""
    _die(sys.argv[1], sys.argv[2], sys.argv[3])


def _die(mode: str, path: str, gate: str) -> None:
    """Wait at ``gate``, write CLOCK_MONOTONIC (ns) to ``path``, then die by ``mode``.

    ``mode`` is kill, exception or segfault. ``gate`` is a FIFO: the child opens it and reads one
    byte, so the parent can start children ahead and let each die when nothing else runs. The
    timestamp is written with one ``write`` right before the fatal act, so the parent can measure
    from the moment of death (CLOCK_MONOTONIC is system-wide on Linux). Core dumps are off:
    writing one would measure the disk, not the harness.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    gate_fd = os.open(gate, os.O_RDONLY)
    os.read(gate_fd, 1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, str(time.monotonic_ns()).encode())
    os.close(fd)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "segfault":
        faulthandler._sigsegv()  # type: ignore[attr-defined]  # CPython's own crash test hook
    raise RuntimeError("benchmark failure: the worker raised on purpose")


def flood() -> None:
    """crashsight runner target: ``flood NBYTES`` writes NBYTES of log lines to fd 2."""
    _flood(int(sys.argv[1]))


def _flood(total: int) -> None:
    line = b"2024-05-01 12:00:00,123 INFO train.py:88] step 1234 loss=2.3456 lr=3.0e-04 " + (
        b"x" * 40 + b"\n"
    )
    block = line * (65536 // len(line))
    view = memoryview(block)
    written = 0
    while written < total:
        chunk = view[: min(len(block), total - written)]
        while chunk:
            chunk = chunk[os.write(2, chunk) :]
        written += min(len(block), total - written)


def emit_then_fail() -> None:
    """crashsight runner target: ``emit_then_fail N`` emits N events, then raises."""
    emit_then_fail_n(int(sys.argv[1]))


def gather_then_fail() -> None:
    """crashsight runner target: ``gather_then_fail FILE N``: wait for the start, emit, raise.

    The benchmark holds an exclusive lock on FILE until every runner has started: all of them
    are alive at once.
    """
    _gather(sys.argv[1])
    emit_then_fail_n(int(sys.argv[2]))


def emit_then_fail_n(n: int) -> None:
    """Emit ``n`` events through the channel, then raise."""
    payload = payload_of(100)
    for i in range(n):
        runner.emit(BenchEvent(seq=i, payload=payload))
    raise RuntimeError("benchmark failure: the worker raised on purpose")


def _gather(path: str) -> None:
    """Block until the benchmark releases its lock on ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def mp_gather_then_fail(conn: Connection, n: int, path: str) -> None:
    """Baseline child of the 1000-runner row: after the same start lock, the same events on its
    own Pipe, then raise.

    A Pipe per process, not one shared Queue: a thousand producers on one Queue contend for its
    lock for minutes, and a parent that waits on many Pipes is what one would write at that scale.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    _gather(path)
    payload = payload_of(100)
    for i in range(n):
        conn.send_bytes(BenchEvent(seq=i, payload=payload).model_dump_json().encode())
    conn.close()
    raise RuntimeError("benchmark failure: the worker raised on purpose")


def mp_emit_then_fail(queue: Queue[tuple[int, str]], index: int, n: int) -> None:
    """Baseline child of the scale benchmark: the same events on a shared Queue, then raise.

    Its stderr goes to /dev/null, as a supervised runner's goes to a pipe crashsight discards.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    payload = payload_of(100)
    for i in range(n):
        queue.put((index, BenchEvent(seq=i, payload=payload).model_dump_json()))
    queue.close()
    queue.join_thread()
    raise RuntimeError("benchmark failure: the worker raised on purpose")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "die":
        _die(*rest)
    elif command == "flood":
        _flood(int(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")


def hang_unanswering() -> None:
    """Hang with every signal blocked in every thread: no stack dump, and no SIGTERM, gets in.

    The mask is set, then the process becomes a plain sleeping interpreter, whose threads all
    inherit it (the bootstrap's own threads would otherwise still take signals).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(3600)"])
