"""The runner side of a supervised Ray call: ``crashsight.ray.child:main CALL RESULT NAME LIMIT``.

The Ray worker starts this target through the runner bootstrap, so an exception in the body
reaches the supervisor structured, and a crash in native code takes down this process only.

The call is announced as a task named after the function, finished only once its result is
written: if the runner dies (a crash, an exception, a watchdog), the verdict lists it in flight. The frames are sent as plain JSON fields, because the wire models would cost
every call the import of the protocol module (pydantic models, about a third of a second on a
loaded machine) for two events.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable

from ..runner.api import send_fields
from .payload import read_call, write_result

__all__ = ["main"]


def main() -> None:
    """Run the pickled call named on the command line and write its pickled result."""
    call_path, result_path, name, limit = sys.argv[1:5]
    fn, args, kwargs = read_call(call_path)
    send_fields({"kind": "task_started", "task_id": name})
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        import asyncio  # only async bodies pay for it

        result = asyncio.run(_wait(result))
    write_result(result_path, name, result, int(limit))
    send_fields({"kind": "task_finished", "task_id": name, "ok": True})


async def _wait(awaitable: Awaitable[object]) -> object:
    return await awaitable
