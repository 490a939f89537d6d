"""Testing toolkit: crash injectors for workers, and `assert_verdict` for tests.

Injectors (`crashsight.testing.injectors`) run inside a worker and make it really fail; the same
injectors are runner targets in `crashsight.testing.targets`. The pytest plugin
(`crashsight.testing.plugin`, loaded automatically once crashsight is installed) adds the
``supervisor`` and ``run_crash`` fixtures and the ``crashsight`` marker.

Workers import this package, so it loads the standard library and pydantic only: the plugin, which
needs pytest and the supervisor, is not imported from here.
"""

from __future__ import annotations

from .assertions import assert_verdict as assert_verdict
from .assertions import verdict_of as verdict_of
from .injectors import abort as abort
from .injectors import bus_error as bus_error
from .injectors import close_channel as close_channel
from .injectors import delayed as delayed
from .injectors import emit_signature as emit_signature
from .injectors import enospc as enospc
from .injectors import exit as exit
from .injectors import garbage_frame as garbage_frame
from .injectors import hang as hang
from .injectors import http_get as http_get
from .injectors import ignore_sigterm as ignore_sigterm
from .injectors import leave_grandchild as leave_grandchild
from .injectors import memory_error as memory_error
from .injectors import raise_ as raise_
from .injectors import segfault as segfault
from .injectors import sigkill as sigkill
from .injectors import stderr_flood as stderr_flood

__all__ = (
    "abort",
    "assert_verdict",
    "bus_error",
    "close_channel",
    "delayed",
    "emit_signature",
    "enospc",
    "exit",
    "garbage_frame",
    "hang",
    "http_get",
    "ignore_sigterm",
    "leave_grandchild",
    "memory_error",
    "raise_",
    "segfault",
    "sigkill",
    "stderr_flood",
    "verdict_of",
)
