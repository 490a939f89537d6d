"""A guardian process that kills the runners' process groups if the supervisor itself is killed.

``PR_SET_PDEATHSIG`` (the exec shim) and the bootstrap's channel watch stop a runner's *own*
process when the supervisor dies, but not the rest of its group: ``crashsight run -- bash -c
'sleep 600 | cat'`` SIGKILLed would leave ``sleep`` and ``cat`` running. So each supervisor starts
one small guardian (``python -S`` running this file: standard library only) in a session of its
own, and tells it over a pipe which process groups are live::

    supervisor ──stdin pipe: "+4242\n" (runner started), "-4242\n" (runner reaped)──► guardian

The guardian holds the pipe's read end and nothing else. When the pipe reaches end-of-file (the
supervisor exited, however it died), it SIGKILLs every group still listed, then exits. A
supervisor that closes normally has reaped every runner first, so nothing is left to kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

__all__ = ["Guardian"]


class Guardian:
    """The supervisor's handle on its guardian process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to crashsight's group must not end the guardian
        )

    def watch(self, pgid: int) -> None:
        """A runner's process group exists: kill it if the supervisor dies."""
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        """The runner was reaped and its group swept: nothing left to guard."""
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """End the guardian (it kills any group still listed) and reap it."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(line.encode())
            stdin.flush()
        except OSError:
            pass  # the guardian is gone; the shim and channel watch still protect the runners


def _guard() -> None:
    """The guardian's side: track groups from stdin; at end-of-file, kill what is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    live: set[int] = set()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if line[:1] == b"+":
            live.add(int(line[1:]))
        elif line[:1] == b"-":
            live.discard(int(line[1:]))
    for pgid in live:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            continue


if __name__ == "__main__":
    _guard()
