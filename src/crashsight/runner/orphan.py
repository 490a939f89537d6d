"""Runners do not outlive their supervisor, and give their stacks from a thread that holds the GIL.

The supervisor writes to the runner's lifeline (`crashsight.runner.channel`) only to ask for the
stacks before a stop (`crashsight.runner.stackdump.dump_before_stop`), and closes its end only
once it has reaped the runner, so end-of-file on the runner's end means the supervisor process is
gone. A thread waits for that in a blocking read and then stops the runner's process group the
way the supervisor would have: SIGTERM, a grace period, SIGKILL. This works on every POSIX
system; on Linux, commands that are not Python are covered by `crashsight.runner.pdeathsig`
instead.

The read is a blocking ``read`` rather than a wait in ``poll``: a read in progress holds the
socket itself, so when the program closes the descriptor behind crashsight's back (a daemonising
library closes them all) or puts a file of its own on its number, the read still ends at the
supervisor's death. ``poll`` watches the number: after a close it returned at once, and after a
``dup2`` onto the number it slept forever.

The worker often notices first: its next write to stdout or stderr (pipes the dead supervisor
read) fails with EPIPE, and the exception ends it before the thread is scheduled. Nothing would
then stop the children it leaves behind, so the same check runs once more at the interpreter's
exit, before the thread dies with the process.

The thread is born with the asynchronous signals blocked. The kernel hands a signal sent to the
process to any thread that does not block it, and takes another one when the main thread already
has a signal pending (the dump signal, then SIGTERM, on a loaded machine): the stack dump of
`crashsight.runner.stackdump` would then run here, walking the main thread's frames while it
runs and frees them, and it crashed the worker with SIGSEGV (24 of 400 stops of a busy worker
under load, none with the mask). Blocked here, such signals wait for a thread of the program.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # as crashsight.runner.stackdump: no enum
import _thread  # not threading, which loads functools and collections in every worker
import atexit
import os
import time

from .channel import Channel
from .stackdump import DUMP_REQUEST, dump_before_stop, name_thread

__all__ = ["watch_for_supervisor_death"]

#: The watch thread's name in stack dumps.
WATCH_THREAD_NAME = "crashsight-supervisor-watch"

#: How long a worker whose supervisor died gets to honour SIGTERM before its group is killed.
ORPHAN_GRACE_S = 5.0

#: Signals a fault raises in the thread that caused it: never blocked, or the kernel would kill
#: the process without faulthandler's report of where it crashed.
_SYNCHRONOUS = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGTRAP", "SIGSYS"}


def watch_for_supervisor_death(channel: Channel) -> None:
    """Start a daemon thread that stops this process group when the supervisor's end closes.

    The same thread answers the supervisor's request for the stacks before a stop
    (`crashsight.runner.stackdump.dump_before_stop`). Without a lifeline (a supervisor of another
    crashsight version gave none) there is nothing to watch, and the supervisor's guardian is the
    runner's one protection left.

    Returns once the thread is in its read (`_wait_for_read`), so that no code of the program
    runs before the read holds the lifeline's socket. Before this, a program that put a file of
    its own on every descriptor as it started (a daemonising library) had the thread read that
    file in two starts of three, take its end-of-file for the supervisor's death and stop a
    healthy runner.
    """
    fd = channel.lifeline_fileno()
    if fd == -1:
        return
    started = _thread.allocate_lock()
    started.acquire()
    native_id: list[int] = []

    def watch() -> None:
        native_id.append(_thread.get_native_id())
        started.release()
        try:
            while request := os.read(fd, 4096):
                if DUMP_REQUEST in request:
                    dump_before_stop()
                if not channel.intact():
                    return  # closed behind our back: the number may be the program's file now
        except OSError:
            return  # closed behind our back between two reads: nothing to watch any more
        _signal_own_group(_signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        _signal_own_group(_signal.SIGKILL)

    # A new thread inherits its creator's signal mask: block, start, restore. Like a daemon
    # thread, it does not hold up the interpreter's exit.
    asynchronous = _signal.valid_signals() - {getattr(_signal, name) for name in _SYNCHRONOUS}
    previous = _signal.pthread_sigmask(_signal.SIG_BLOCK, asynchronous)
    try:
        ident = _thread.start_new_thread(watch, ())
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, previous)
    started.acquire()
    _wait_for_read(native_id[0], fd)
    name_thread(ident, WATCH_THREAD_NAME)
    atexit.register(_stop_group_if_orphaned, channel)


def _wait_for_read(native_id: int, fd: int) -> None:
    """Wait (a second at most) until thread ``native_id`` sleeps in a system call on ``fd``.

    Only the kernel knows: a lock released just before the read says the thread is about to
    read, and the thread can be preempted right there while the program goes on (one start in
    four, four runners starting at once on two CPUs). Linux shows the call a thread sleeps in,
    and its first argument, in ``/proc/self/task/TID/syscall`` (waiting for the GIL is a futex
    call on an address, not on ``fd``); elsewhere there is no such file, and the lock is all.
    """
    try:
        probe = os.open(f"/proc/self/task/{native_id}/syscall", os.O_RDONLY)
    except OSError:
        return
    in_read = b"0x%x" % fd
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            fields = os.pread(probe, 256, 0).split()
            if len(fields) > 1 and fields[0] != b"running" and fields[1] == in_read:
                return
            time.sleep(0.0002)
    finally:
        os.close(probe)


def _stop_group_if_orphaned(channel: Channel) -> None:
    """At exit: answer a request the thread has not read; if the supervisor is gone, SIGTERM the
    group as the thread would have.

    The check reads the lifeline (a request would hide the end-of-file from a peek), so a
    request it finds is answered here: the supervisor, stopping a runner that is exiting anyway,
    waits for the stacks. This process is in the group, so it ends by that SIGTERM, as under the
    thread; children that ignore it are left to the guardian and the cgroup, which do not depend
    on this process. Exit handlers run last-registered first, so those registered before this one
    (by modules a fork server preloaded, say) do not run in that case.
    """
    unread, gone = channel.drain_lifeline()
    if DUMP_REQUEST in unread:
        dump_before_stop()
    if gone:
        _signal_own_group(_signal.SIGTERM)


def _signal_own_group(sig: int) -> None:
    """Signal this runner's process group, or only this process when it leads no group of its own."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), sig)
    else:
        os.kill(os.getpid(), sig)
