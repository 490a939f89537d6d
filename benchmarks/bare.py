"""Children that need nothing but the standard library: dying on purpose and flooding stderr.

Each is a crashsight runner target and, run as ``python -m benchmarks.bare die MODE PATH`` or
``... flood NBYTES``, the bare process of its baseline. Neither imports pydantic or crashsight:
the failure benchmark starts over 400 of them, and what they measure (the moment of death, the
supervisor's memory under a flood) does not depend on what they imported.
"""

from __future__ import annotations

import faulthandler
import os
import resource
import signal
import sys
import time

__all__ = ["die", "flood"]


def die() -> None:
    """crashsight runner target: ``die MODE PATH``; see `_die`."""
    _die(sys.argv[1], sys.argv[2])


def _die(mode: str, path: str) -> None:
    """Write CLOCK_MONOTONIC (ns) to ``path``, then die by ``mode``: kill, exception or segfault.

    The timestamp is written with one ``write`` right before the fatal act, so the parent can
    measure from the moment of death (CLOCK_MONOTONIC is system-wide on Linux). Core dumps are off:
    writing one would measure the disk, not the harness.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
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


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "die":
        _die(*rest)
    elif command == "flood":
        _flood(int(rest[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")
