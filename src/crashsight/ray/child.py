"""The runner side of a supervised Ray call: ``crashsight.ray.child:main CALL RESULT NAME LIMIT``.

The Ray worker starts this target through the runner bootstrap, so an exception in the body
reaches the supervisor structured, and a crash in native code takes down this process only. The
body runs inside a `crashsight.runner.task` named after the function, which makes it the task in
flight on the verdict when the process dies.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable

from .. import runner
from .payload import read_call, write_result

__all__ = ["main"]


def main() -> None:
    """Run the pickled call named on the command line and write its pickled result."""
    call_path, result_path, name, limit = sys.argv[1:5]
    fn, args, kwargs = read_call(call_path)
    with runner.task(name):
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            import asyncio  # only async bodies pay for it

            result = asyncio.run(_wait(result))
    write_result(result_path, name, result, int(limit))


async def _wait(awaitable: Awaitable[object]) -> object:
    return await awaitable
