"""Everything that runs inside a worker process.

This package is imported by every supervised worker, so it depends on the standard library and
pydantic only: never on anyio, psutil or the supervisor.

The four calls are re-exported lazily: every Python process of a runner's tree imports this
package for its stack dumps (`crashsight.runner.stackdump`), and only the runner itself needs the
channel behind `emit`, `heartbeat`, `progress` and `task`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from .api import emit as emit
    from .api import heartbeat as heartbeat
    from .api import progress as progress
    from .api import task as task

__all__ = ("emit", "heartbeat", "progress", "task")


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module 'crashsight.runner' has no attribute {name!r}")
    from .api import emit, heartbeat, progress, task

    value: object = {"emit": emit, "heartbeat": heartbeat, "progress": progress, "task": task}[name]
    globals()[name] = value
    return value
