"""The bounded buffer between a runner's readers and whoever iterates its events.

Overflow policy: the supervisor never blocks reading the channel on a slow (or absent) consumer,
since that would stall the worker on a full socket. When the buffer is full the *oldest* event is
dropped and counted. The supervisor's own closing items (ErrorChunks and the final status) are the
newest, so they are never the ones dropped, and the final status is also kept apart for `wait()`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

import anyio
from pydantic import BaseModel

__all__ = ["EventBuffer"]


class EventBuffer:
    """A single-consumer queue of events with drop-oldest overflow.

    Args:
        capacity: Events held before the oldest are dropped.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"event buffer capacity must be >= 1, got {capacity}")
        self._items: deque[BaseModel] = deque()
        self._capacity = capacity
        self._ready = anyio.Event()
        self._closed = False
        self._waiting = False
        self.dropped = 0

    def put(self, item: BaseModel) -> None:
        """Append ``item``, dropping the oldest event if the buffer is full."""
        if len(self._items) >= self._capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        if self._waiting:  # setting an Event costs more than a flag check, and most puts find
            self._ready.set()  # the consumer busy or absent

    def overflow_of(self, count: int) -> int:
        """How many held events putting ``count`` more would drop."""
        return max(0, len(self._items) + count - self._capacity)

    def close(self) -> None:
        """No more events will come; the iterator ends once the buffer is empty."""
        self._closed = True
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[BaseModel]:
        while True:
            while self._items:
                yield self._items.popleft()
            if self._closed:
                return
            self._ready = anyio.Event()
            self._waiting = True
            try:
                await self._ready.wait()
            finally:
                self._waiting = False
