"""Runners do not outlive their supervisor.

The supervisor never writes to the channel, so end-of-file on the runner's end means the supervisor
process is gone (ECONNRESET instead, when it died with events of ours still unread). A thread
waits for that and then stops the runner's process group the way the supervisor would have:
SIGTERM, a grace period, SIGKILL. This works on every POSIX system; on Linux,
commands that are not Python are covered by `crashsight.runner.pdeathsig` instead.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # as crashsight.runner.stackdump: no enum
import os
import threading
import time

from .channel import Channel
from .stackdump import name_thread

__all__ = ["watch_for_supervisor_death"]

#: How long a worker whose supervisor died gets to honour SIGTERM before its group is killed.
ORPHAN_GRACE_S = 5.0


def watch_for_supervisor_death(channel: Channel) -> None:
    """Start a daemon thread that stops this process group when the supervisor's end closes."""
    fd = channel.fileno()

    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except ConnectionResetError:
            pass  # the supervisor died with our events unread: the kernel resets, no EOF
        except OSError:
            return  # the worker closed the channel itself: nothing to watch any more
        if channel.fileno() == -1:
            return  # closed by this process at exit, not by the supervisor
        _signal_own_group(_signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        _signal_own_group(_signal.SIGKILL)

    thread = threading.Thread(target=watch, name="crashsight-supervisor-watch", daemon=True)
    thread.start()
    name_thread(thread.ident, thread.name)


def _signal_own_group(sig: int) -> None:
    """Signal this runner's process group, or only this process when it leads no group of its own."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), sig)
    else:
        os.kill(os.getpid(), sig)
