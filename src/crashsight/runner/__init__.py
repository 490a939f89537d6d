"""Everything that runs inside a worker process.

This package is imported by every supervised worker, so it depends on the standard library and
pydantic only: never on anyio, psutil or the supervisor.
"""

from __future__ import annotations

from .api import emit as emit
from .api import heartbeat as heartbeat
from .api import progress as progress
from .api import task as task

__all__ = ("emit", "heartbeat", "progress", "task")
