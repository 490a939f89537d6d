"""Stopping several runners as one: every stack first, then every stop.

A distributed job hangs as a whole: one rank is stuck in its own code while the others wait for it
in a collective. Stopping them one by one would let the first SIGTERM change what the others are
doing (a collective that fails, a watchdog that fires) before their stacks are taken. So a group
stop asks every runner for its stacks at the same moment, waits for all of them (bounded, as for
one runner), and only then stops them all with their stop policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from .runner import Runner

__all__ = ["stop_with_stacks"]


async def stop_with_stacks(runners: Sequence[Runner], reason: str) -> None:
    """Collect the stacks of every runner concurrently, then stop them all concurrently.

    Each runner's final status then carries its ``stacks``, ``process_tree`` and ``blocked_in``
    from the same moment, which is what comparing ranks needs.

    Args:
        runners: The runners to stop; ones that already ended keep their own outcome.
        reason: Why, for each `RunnerCancelled` status.
    """
    async with anyio.create_task_group() as tg:
        for runner in runners:
            tg.start_soon(runner.collect_stacks)
    async with anyio.create_task_group() as tg:
        for runner in runners:
            tg.start_soon(runner.stop, reason)
