"""Worker targets for the supervisor tests, composed from `crashsight.testing.injectors`.

Single failures run as `crashsight.testing.targets` directly; this file holds only what those
cannot express: workers that succeed with events, and failures in several steps (an injector that
leaves the worker running, then an exit of the test's choosing, so that the test can tell the
exit it asked for from anything the injector did).

The tests load this file by path, so it imports nothing from the test suite.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

from crashsight import runner
from crashsight.testing import injectors


def succeed() -> None:
    """Reports half-way progress and exits 0."""
    runner.progress("working", 0.5)


def grandchild_holds_stderr() -> None:
    """Exits 7, leaving a daemonized grandchild that keeps stderr open."""
    injectors.leave_grandchild(hold_stderr=True)
    print("last words before the crash", file=sys.stderr)
    injectors.exit(7)


def child_in_group_then_hang() -> None:
    """Sends a Progress, starts ``sleep 600`` in its own process group, prints the child's pid,
    then hangs (after one Heartbeat)."""
    runner.progress("starting a child")
    child = subprocess.Popen(["sleep", "600"])
    print(child.pid, flush=True)
    injectors.hang()


def child_in_group_then_drop_descriptors() -> None:
    """Starts ``sleep 600`` in its process group; then, as a daemonising library does, closes
    every descriptor above 2 (``sys.argv[1] == "close"``), or puts on each of their numbers the
    read end of a pipe of its own that never has data nor reaches end-of-file ("reuse"); then
    prints the child's pid and sleeps. crashsight's channel and lifeline are among those
    descriptors (Linux: lists /proc/self/fd)."""
    child = subprocess.Popen(["sleep", "600"])
    numbers = [int(name) for name in os.listdir("/proc/self/fd") if int(name) > 2]
    if sys.argv[1] == "close":
        os.closerange(3, max(numbers) + 1)
    else:
        mine, writer = os.pipe()
        for number in numbers:
            if number not in (mine, writer):
                os.dup2(mine, number)
    print(child.pid, flush=True)
    while True:
        time.sleep(3600)


def child_in_group_then_exit_when_orphaned() -> None:
    """Starts ``sleep 600`` in its process group and prints its pid, then exits 3 the moment its
    supervisor is gone, before crashsight's channel watch can run: the GIL is never let go (a
    busy loop under a switch interval of a day), so only the check at the exit can stop the
    child."""
    child = subprocess.Popen(["sleep", "600"])
    parent = os.getppid()
    sys.setswitchinterval(86400.0)
    print(child.pid, flush=True)
    while os.getppid() == parent:
        pass
    raise SystemExit(3)


def count_watch_wakeups() -> None:
    """Sends ``EVENT_COUNT`` progress events, then prints how often crashsight's watch thread
    woke meanwhile: the growth of its voluntary context switches (Linux: /proc)."""
    (watch,) = [int(tid) for tid in os.listdir("/proc/self/task") if int(tid) != os.getpid()]

    def switches() -> int:
        with open(f"/proc/self/task/{watch}/status") as status:
            line = next(line for line in status if line.startswith("voluntary_ctxt_switches:"))
        return int(line.split()[1])

    before = switches()
    for i in range(int(os.environ["EVENT_COUNT"])):
        runner.progress(f"event {i}")
    print(switches() - before, flush=True)


def main_thread_blocks_sigterm() -> None:
    """Blocks SIGTERM in the main thread and sends it to its own process, then prints the
    signal mask of crashsight's watch thread (``SigBlk``, hex) and, after a second in which no
    other thread may take the signal, "pending"; then unblocks it and ends by it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    os.kill(os.getpid(), signal.SIGTERM)
    # crashsight's watch thread: the one thread of this process besides the main one.
    (watch,) = [int(tid) for tid in os.listdir("/proc/self/task") if int(tid) != os.getpid()]
    with open(f"/proc/self/task/{watch}/status") as status:
        print(next(line for line in status if line.startswith("SigBlk:")).split()[1], flush=True)
    time.sleep(1.0)
    print("pending", flush=True)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def write_garbage_then_events() -> None:
    """Writes garbage and an oversize frame straight to the channel, then exits 5."""
    injectors.garbage_frame()
    raise SystemExit(5)


def close_channel_and_work() -> None:
    """Closes the channel behind crashsight's back, works on, then says so on stderr."""
    injectors.close_channel()
    time.sleep(0.2)  # the work: the supervisor sees the channel's EOF well before the exit
    print("still working", file=sys.stderr, flush=True)


def many_events() -> None:
    """Sends ``EVENT_COUNT`` (default 10,000) progress events."""
    count = int(os.environ.get("EVENT_COUNT", "10000"))
    for i in range(count):
        runner.progress(f"event {i}")


def report_stdin() -> None:
    """Sends one Progress: the device and inode of its fd 0, then the first line read from it."""
    info = os.fstat(0)
    runner.progress(f"{info.st_dev}:{info.st_ino} {sys.stdin.readline().strip()}")


def report_interpreter() -> None:
    """Sends one Progress naming the interpreter wrapper it was started through, if any."""
    runner.progress(f"wrapper={os.environ.get('INTERPRETER_WRAPPER', '')}")


def abort_with_core() -> None:
    """Raises its core-size limit to the hard limit, then aborts: a core is dumped."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    injectors.abort()


def process_chain() -> None:
    """Starts a chain of three descendants (child, grandchild, great-grandchild), each in the
    runner's group, prints their pids once all run, then hangs."""
    script = (
        "import subprocess, sys\n"
        "depth = int(sys.argv[1])\n"
        "child = subprocess.Popen([sys.executable, '-c', sys.argv[2], str(depth - 1), sys.argv[2]]"
        " if depth > 1 else ['sleep', '600'], stdout=None)\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n"
    )
    chain = subprocess.Popen([sys.executable, "-c", script, "2", script], stdout=subprocess.PIPE)
    assert chain.stdout is not None
    pids = [chain.pid, *(int(chain.stdout.readline()) for _ in range(2))]
    runner.progress(" ".join(map(str, pids)))
    injectors.hang()
