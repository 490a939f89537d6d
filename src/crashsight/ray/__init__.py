"""crashsight for Ray: supervised tasks and actor methods (``pip install 'crashsight[ray]'``).

``@supervised`` under ``@ray.remote`` runs each call's body as a crashsight runner in a child of
the Ray worker, so a native crash ends the child, not the worker, and ``ray.get`` on the driver
raises `RunnerFailedError` with the verdict. Nothing here imports Ray: the decorator runs inside
Ray's workers and only asks Ray, when it is loaded, which task it serves.

Names are loaded on first use, like the top-level package's, because the runner child imports
this package too and must stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decorator import supervised as supervised
    from .errors import PayloadTooLargeError as PayloadTooLargeError
    from .errors import RunnerFailedError as RunnerFailedError
    from .events import RayEvent as RayEvent

_EXPORTS: dict[str, str] = {
    "PayloadTooLargeError": "crashsight.ray.errors",
    "RayEvent": "crashsight.ray.events",
    "RunnerFailedError": "crashsight.ray.errors",
    "supervised": "crashsight.ray.decorator",
}

__all__ = ("PayloadTooLargeError", "RayEvent", "RunnerFailedError", "supervised")


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crashsight.ray' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
