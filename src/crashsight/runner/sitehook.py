"""Reports uncaught exceptions of plain Python programs started by ``crashsight run``.

``crashsight run -- python train.py`` does not go through the bootstrap, yet its uncaught exception
should still arrive structured. Installing crashsight puts ``crashsight_hook.pth`` in site-packages
(the way coverage.py measures subprocesses). At interpreter start-up it registers the stack dumps
of every Python process of a runner's tree (``CRASHSIGHT_STACKS_DIR`` set: only
`crashsight.runner.stackdump` is imported), and imports this module only when
``CRASHSIGHT_CHANNEL_FD`` is set and the bootstrap is not the one starting (which reports itself).
The cost for every other interpreter is two dictionary lookups.
"""

from __future__ import annotations

import faulthandler
import os
import sys

from .api import connect, current_channel, send_termination
from .orphan import watch_for_supervisor_death
from .stackdump import install as install_stack_dumps

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["install"]


def install() -> None:
    """Register stack dumps; in the runner, open the channel and chain a reporting excepthook."""
    install_stack_dumps()
    if current_channel() is not None:
        return  # some interpreters run a .pth twice (a venv over pyenv): install once
    channel = connect()
    if channel is None:
        return
    watch_for_supervisor_death(channel)
    if "PYTHONFAULTHANDLER" not in os.environ and not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)
    previous = sys.excepthook

    def report_then_print(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        send_termination(exc, "target")
        previous(exc_type, exc, tb)

    sys.excepthook = report_then_print
