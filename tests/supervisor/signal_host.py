"""``python signal_host.py BACKEND``: a program with its own signal handlers runs a Supervisor.

It installs handlers for SIGINT, SIGTERM and SIGHUP, runs ``Supervisor(handle_signals=True)``
with one hanging runner, sends itself SIGTERM once the runner is up, and after the supervisor
has ended sends itself SIGTERM again: that one must reach the program's own handler. Prints one
JSON line: the runner's status, the signal the supervisor received, whether each handler is the
program's again, and the signals the program's handler saw.

``python signal_host.py asyncio-loop``: the program's SIGTERM callback is given to asyncio's
``loop.add_signal_handler`` instead, which crashsight cannot bring back; the SIGTERM after the
supervisor must then end the process (the default action), never be ignored.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from types import FrameType

import anyio

from crashsight.protocol import Heartbeat
from crashsight.supervisor.supervisor import Supervisor

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
seen: list[str] = []


def mine(signum: int, frame: FrameType | None) -> None:
    seen.append(signal.Signals(signum).name)


async def supervise() -> tuple[str, str | None]:
    async with Supervisor(output="discard", handle_signals=True) as supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:hang")
        async for event in runner.events():
            if isinstance(event, Heartbeat):  # the worker is up: now the signal
                os.kill(os.getpid(), signal.SIGTERM)
        status = await runner.wait()
    received = supervisor.received_signal
    return status.status, received.name if received else None


async def supervise_under_a_loop_handler() -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, seen.append, "loop")
    await supervise()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(30)  # the default action ends the process first


def main(backend: str) -> None:
    if backend == "asyncio-loop":
        asyncio.run(supervise_under_a_loop_handler())
        raise SystemExit(f"still alive after SIGTERM; the loop's callback saw {seen}")
    for sig in SIGNALS:
        signal.signal(sig, mine)
    status, received = anyio.run(supervise, backend=backend)
    restored = [signal.getsignal(sig) is mine for sig in SIGNALS]
    os.kill(os.getpid(), signal.SIGTERM)  # the program's again: its handler runs, no death
    print(json.dumps({"status": status, "received": received, "restored": restored, "seen": seen}))


if __name__ == "__main__":
    main(sys.argv[1])
