"""Workers that try to leave their runner behind, for the escape suite (tests/supervisor/test_escape.py).

Each is a target for the runner bootstrap (``f"{path}:name"``) and also runs as a plain program
(``python escape_workers.py name ARGS...``); either way its arguments are ``sys.argv[1:]``. The
first argument is a file the worker writes the pids of its escapees to (atomically, once they are
all in place), so the test can check each one afterwards whatever it did to hide. Then the worker
says ``escaped`` on stdout and either exits (``exit``: the escapees are leftovers) or waits to be
stopped (``stay``).

Standard library only: this file is loaded by path in the children.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

#: How long a worker waits for its escapees to report in before it gives up (never in practice).
_REPORT_WITHIN_S = 60.0


def _args() -> list[str]:
    return sys.argv[1:]


def _publish(pidfile: Path, pids: list[int]) -> None:
    partial = pidfile.with_suffix(".partial")
    partial.write_text(" ".join(map(str, pids)))
    partial.rename(pidfile)


def _await_report(pidfile: Path) -> None:
    """Wait until an escapee wrote its pid (it publishes the file itself)."""
    deadline = time.monotonic() + _REPORT_WITHIN_S
    while not pidfile.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no escapee reported in {pidfile}")
        time.sleep(0.01)


def _finish(mode: str) -> None:
    """Say the escapees are in place (a Progress event), then exit or wait to be stopped."""
    from crashsight import runner  # lazily: only a worker that got this far needs it

    runner.progress("escaped")
    if mode == "stay":
        while True:
            signal.pause()


def _forever() -> None:
    """Become an idle process that only SIGKILL can end (stdout and stderr let go)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    while True:
        signal.pause()


def double_fork_scrubbed() -> None:
    """``PIDFILE MODE``: a daemon by the book: fork, setsid, fork, then exec with an empty environment.

    The daemon is re-parented to init, in a session and process group of its own, and carries no
    ``CRASHSIGHT_*`` marker: nothing but a cgroup still ties it to the runner.
    """
    pidfile, mode = Path(_args()[0]), _args()[1]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            _publish(pidfile, [os.getpid()])
            os.execve("/bin/sleep", ["sleep", "600"], {})
        os._exit(0)
    os.wait()
    _await_report(pidfile)
    _finish(mode)


def blocked_grandchild() -> None:
    """``PIDFILE MODE``: a grandchild that ignores SIGTERM and blocks every signal it can."""
    pidfile, mode = Path(_args()[0]), _args()[1]
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        if os.fork() == 0:
            _publish(pidfile, [os.getpid()])
            _forever()
        _forever()
    _await_report(pidfile)
    _finish(mode)


def session_hopper() -> None:
    """``PIDFILE MODE``: a descendant that changes its session and its process group twice.

    Child: new session. Grandchild: new process group in that session. Great-grandchild: a new
    session again, after which its ancestors exit and it is re-parented to init.
    """
    pidfile, mode = Path(_args()[0]), _args()[1]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.setpgid(0, 0)
            if os.fork() == 0:
                os.setsid()
                _publish(pidfile, [os.getpid()])
                _forever()
            os._exit(0)
        os.wait()
        os._exit(0)
    os.wait()
    _await_report(pidfile)
    _finish(mode)


def fork_bomb() -> None:
    """``PIDFILE CAP``: fork idle children in new sessions until fork fails, at most CAP of them.

    Under a pids limit below CAP the kernel refuses a fork with EAGAIN and the uncaught
    ``BlockingIOError`` ends the worker; the cap keeps the bomb bounded where no limit holds.
    """
    pidfile, cap = Path(_args()[0]), int(_args()[1])
    children: list[int] = []
    try:
        for _ in range(cap):
            pid = os.fork()
            if pid == 0:
                os.setsid()
                _forever()
            children.append(pid)
    finally:
        _publish(pidfile, children)


if __name__ == "__main__":
    name, *rest = sys.argv[1:]
    sys.argv = [sys.argv[0], *rest]
    globals()[name]()
