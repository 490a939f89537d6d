"""Passing a runner's output through without ever blocking the supervisor's event loop.

Writing to this process's stdout can block for as long as its reader likes: a paused pager, a
stalled log shipper, ``crashsight run ... | sleep 60``. A blocking write on the event loop would
freeze every watchdog, every signal handler and every other runner, so each sink copies in a
thread of its own behind a bounded queue. When the queue is full, the runner's pump waits (without
blocking the loop) and stops reading the runner's pipe: the runner feels the same backpressure it
would feel writing to the slow reader directly.

A slow reader still gets everything: waits are cut short only when the reader has taken nothing
at all for a while (`progress` says whether it has). When the reader goes away for good
(``EPIPE``, as in ``crashsight run -- yes | head``), the sink is ``broken``; the stdout pump then
stops reading, so the runner gets SIGPIPE or EPIPE as it would in a plain shell pipeline.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import BinaryIO

import anyio

__all__ = ["OutputSink"]

#: Chunks (of up to 64 KiB) queued per sink before the pumps feel backpressure.
_QUEUE_CHUNKS = 64
#: How long closing waits for a reader that takes nothing at all.
_STALL_S = 5.0
#: How often a waiting pump looks for room in a full queue. The copying thread is not an anyio
#: thread and cannot wake the loop, so waiting is polling.
_POLL_S = 0.01


class OutputSink:
    """Where a runner's stdout or stderr goes after crashsight has looked at it.

    Args:
        target: A file descriptor to copy the bytes to (the parent's own stdout/stderr for
            pass-through), a binary file (a log file), or None to discard.
    """

    def __init__(self, target: int | BinaryIO | None) -> None:
        self._target = target
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE_CHUNKS)
        self._thread: threading.Thread | None = None
        #: The destination failed (reader gone, file closed); later writes are dropped.
        self.broken = False
        #: Bytes the destination has taken so far; a waiting caller watches it move.
        self.written = 0

    async def write(self, data: bytes) -> None:
        """Queue ``data`` for copying; wait, off the event loop, while the queue is full."""
        if self._target is None or self.broken:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._copy, name="crashsight-output", daemon=True
            )
            self._thread.start()
        await self._put(data)

    async def aclose(self, stall: float = _STALL_S) -> None:
        """Let the copying thread pass on what is queued, then end.

        It waits as long as the reader keeps taking output, and gives up once the reader has taken
        nothing for ``stall`` seconds; the thread is a daemon, so it is then left behind rather
        than holding up the supervisor.
        """
        thread, self._thread = self._thread, None
        if thread is None:
            return
        # Idle time is read from the clock, not counted in polls: each poll sleeps at least
        # _POLL_S, and far longer while the loop is busy, which would stretch the wait.
        last, end_queued = self.written, False
        last_taken = anyio.current_time()
        while thread.is_alive() and anyio.current_time() - last_taken < stall:
            if not end_queued:
                try:
                    self._queue.put_nowait(None)
                    end_queued = True
                except queue.Full:
                    pass
            await anyio.sleep(_POLL_S)
            if self.written != last:
                last, last_taken = self.written, anyio.current_time()

    async def _put(self, item: bytes) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                await anyio.sleep(_POLL_S)

    def _copy(self) -> None:
        target = self._target
        while (data := self._queue.get()) is not None:
            if self.broken or target is None:
                continue  # keep draining, so no producer waits forever on a full queue
            try:
                if isinstance(target, int):
                    view = memoryview(data)
                    while view:
                        view = view[os.write(target, view) :]
                else:
                    target.write(data)
                    target.flush()
                self.written += len(data)
            except (OSError, ValueError):
                self.broken = True
