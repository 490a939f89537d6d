"""Closing a pass-through sink whose reader takes nothing gives up after the stall, by the clock.

The reader is a real pipe nobody reads, filled until the copying thread blocks in ``write``.
"""

from __future__ import annotations

import os
import threading
import time

import anyio
import anyio.lowlevel
import pytest

from crashsight.supervisor.output import OutputSink

_CHUNK = b"x" * 65536


async def _fill(sink: OutputSink) -> None:
    """Write until the copying thread is stuck on the full pipe and more waits in its queue."""
    for _ in range(16):
        await sink.write(_CHUNK)
    with anyio.fail_after(30):
        # The pipe took what it holds, then the thread blocked; it cannot set an anyio Event.
        while sink.written < 65536:  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def _hog_the_loop() -> None:
    """Keep the event loop busy, as a supervisor with many runners would: every poll is late."""
    while True:
        time.sleep(0.05)  # noqa: ASYNC251 - blocks the loop on purpose
        await anyio.lowlevel.checkpoint()


@pytest.mark.asyncio
async def test_a_stalled_reader_is_given_up_after_the_stall_even_on_a_busy_loop() -> None:
    """With every poll 50 ms late, counting polls waited 15 times the stall (7.6 s for 0.5); the
    clock gives up after it, and never before."""
    read_end, write_end = os.pipe()
    sink = OutputSink(write_end)
    copying: threading.Thread | None = None
    try:
        await _fill(sink)
        copying = sink._thread
        assert copying is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_hog_the_loop)
            started = time.monotonic()
            await sink.aclose(stall=0.5)
            waited = time.monotonic() - started
            tg.cancel_scope.cancel()
        assert copying.is_alive(), "given up on, still blocked in write"
    finally:
        copying = copying or sink._thread
        os.close(read_end)  # the blocked write fails with EPIPE and the thread drains its queue
        if copying is not None:
            copying.join(timeout=30)
        os.close(write_end)  # only now: a number closed under the thread could be reused
    assert copying is not None
    assert not copying.is_alive()
    assert waited >= 0.5
    assert waited < 2.0  # counting polls instead waited 7.6 s here
