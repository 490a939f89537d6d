"""Exec shim: ``python -S pdeathsig.py SUPERVISOR_PID PROGRAM ARGV0 [ARGS...]`` (Linux only).

A command that is not a bootstrapped Python runner cannot watch its lifeline for its supervisor's
death, so on Linux the supervisor starts it through this shim. The shim asks the kernel to SIGKILL
it when its parent dies (``PR_SET_PDEATHSIG``, which survives ``execve``), checks that the parent
did not die before that took effect, and then replaces itself with the real program. It runs with
``-S`` and the standard library only, so it costs a few milliseconds.

Caveat from prctl(2): the signal fires when the *thread* that forked the child exits, so the
supervisor spawns from its event-loop thread, never from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    """Arm the death signal, then exec ``argv[1]`` with ``argv[2:]`` as its argv."""
    supervisor_pid, program, *program_argv = argv
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        os.write(2, f"crashsight: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}\n".encode())
    if os.getppid() != int(supervisor_pid):
        os._exit(128 + signal.SIGKILL)  # the supervisor died before the signal was armed
    # The start gate (runner.gate, runner.channel.START_GATE_ENV): wait until the supervisor has
    # moved this process into the runner's cgroup, so the program runs nowhere else.
    gate = os.environ.pop("CRASHSIGHT_START_GATE", None)
    if gate and not _gate_opened(int(gate)):
        os._exit(128 + signal.SIGKILL)  # the supervisor died or gave up before opening it
    # This interpreter ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across
    # execve: give the program the defaults it would get from a shell (so `yes | head` ends).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    # The program keeps this pid: it alone may open the channel, not its own children. (The name
    # is runner.channel.CHANNEL_OWNER_ENV; this shim runs with -S and imports no crashsight.)
    os.environ["CRASHSIGHT_CHANNEL_OWNER"] = str(os.getpid())
    try:
        os.execv(program, program_argv)
    except OSError as exc:
        os.write(2, f"crashsight: cannot execute {program}: {exc.strerror}\n".encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


def _gate_opened(fd: int) -> bool:
    try:
        return os.read(fd, 1) != b""
    finally:
        os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1:])
