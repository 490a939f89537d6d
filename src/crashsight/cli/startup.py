"""Signals that arrive while crashsight itself is starting, before the supervisor listens.

``crashsight run`` promises exit 130/143 *and* a report when it is interrupted. The supervisor's
own handlers exist only once its event loop runs, and importing crashsight, parsing options and
detecting cgroups take a few hundred milliseconds before that: a Ctrl-C there used to end the
process with a traceback and no report. So the command line installs a recorder first thing,
before it imports the sub-commands; ``run`` asks it whether a signal came before it starts the
command, and every other sub-command gets the signal's usual effect back as soon as it is known
not to be ``run``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["StartupSignals"]

#: The signals `crashsight run` turns into a cancelled report (the supervisor handles the same).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_Handler = Callable[[int, FrameType | None], Any] | int | None


class StartupSignals:
    """Records the first SIGINT/SIGTERM/SIGHUP until someone is ready to act on it."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, _Handler] = {}

    @classmethod
    def install(cls) -> StartupSignals:
        """Start recording (only the main thread may set handlers; elsewhere this records nothing)."""
        recorder = cls()
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                recorder._previous[sig] = signal.signal(sig, recorder._record)
        return recorder

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum)

    def restore(self, *, redeliver: bool) -> None:
        """Put the previous handlers back; with ``redeliver``, act on a recorded signal now.

        Redelivery gives the signal the effect it would have had without the recorder: a
        KeyboardInterrupt for SIGINT, the default action (death) for SIGTERM and SIGHUP.
        """
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        if redeliver and self.received is not None:
            os.kill(os.getpid(), self.received)
