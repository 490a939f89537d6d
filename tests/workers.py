"""Targets run by the tests through the real runner bootstrap (``tests/workers.py:name``).

Each makes its failure really happen. They are loaded by path, so this file imports nothing from
the test suite.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import time

from crashsight import runner
from crashsight.protocol import Progress


def succeed() -> None:
    runner.progress("working", 0.5)


def raise_value_error() -> None:
    with runner.task("t-1"):
        raise ValueError("bad shard 3")


def exit_three() -> None:
    runner.emit(Progress(message="about to exit"))
    os._exit(3)


def segfault_in_task() -> None:
    with runner.task("shard-7"):
        faulthandler._sigsegv()  # type: ignore[attr-defined]


def abort() -> None:
    os.abort()


def sigkill_self() -> None:
    with runner.task("a"), runner.task("b"):
        os.kill(os.getpid(), signal.SIGKILL)


def hang() -> None:
    runner.heartbeat()
    time.sleep(600)


def busy() -> None:
    """Stays busy (and visibly alive, so only the deadline can stop it)."""
    while True:
        runner.heartbeat()
        time.sleep(0.05)


def ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


def _sleeper(*extra: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(600)", *extra]


def leave_grandchild() -> None:
    """Starts a grandchild in a session of its own, then exits successfully."""
    proc = subprocess.Popen(
        _sleeper(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    print(f"grandchild {proc.pid}", file=sys.stderr, flush=True)


def grandchild_holds_stderr() -> None:
    """Crashes, leaving a daemonized grandchild that keeps stderr open."""
    subprocess.Popen(_sleeper(), start_new_session=True)
    print("last words before the crash", file=sys.stderr, flush=True)
    os._exit(7)


def write_garbage_then_events() -> None:
    """Writes random bytes and an oversize frame header straight to the channel fd."""
    from crashsight.runner.api import current_channel

    channel = current_channel()
    assert channel is not None
    fd = channel.fileno()
    os.write(fd, os.urandom(4096).replace(b"\xff", b"\x00"))
    os.write(fd, b"\xffCS\x01" + (50 * 1024 * 1024).to_bytes(4, "big"))
    os.write(fd, b"{" * 1000)
    raise SystemExit(5)


def close_channel_and_work() -> None:
    from crashsight.runner.api import current_channel

    channel = current_channel()
    assert channel is not None
    os.close(channel.fileno())
    time.sleep(0.2)
    print("still working", file=sys.stderr, flush=True)


def many_events() -> None:
    count = int(os.environ.get("EVENT_COUNT", "10000"))
    for i in range(count):
        runner.progress(f"event {i}")
