"""Workers that really hang, each in its own way: ``python hang_workers.py CASE``.

Every case says ``hang worker ready`` on stderr and stdout (and as a progress event, on request)
right before it blocks, so a test can wait for the block instead of guessing how long start-up
takes. The function that blocks is named after what it stands for (``flush_shard``, ``run_tool``):
the tests look for those names in ``blocked_in``. Also usable as runner targets
(``hang_workers.py:flush_shard``). The tests load this file by path; it imports nothing from them.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from crashsight import runner

FOREVER = 3600.0


def ready() -> None:
    """Tell the test (and the no-progress watchdog) that the block comes next.

    With ``HANG_ANNOUNCE=1`` it also sends a progress event, for tests that wait for one.
    """
    print("hang worker ready", file=sys.stderr, flush=True)
    print("hang worker ready", flush=True)
    if os.environ.get("HANG_ANNOUNCE"):
        runner.progress("hang worker ready")


def flush_shard() -> None:
    """Deadlocks on a `threading.Lock` it already holds."""
    lock = threading.Lock()
    lock.acquire()
    ready()
    lock.acquire()


def wait_for_batch() -> None:
    """Waits on a `queue.Queue` that nothing ever fills."""
    work: queue.Queue[int] = queue.Queue()
    ready()
    work.get()


def read_reply() -> None:
    """Waits in ``recv`` on a socket whose peer never sends."""
    ours, theirs = socket.socketpair()
    ready()
    ours.recv(1)
    theirs.close()


def nap() -> None:
    """Sleeps far longer than any test waits."""
    ready()
    time.sleep(FOREVER)


def nap_beside_a_busy_thread() -> None:
    """Sleeps while another thread runs deep Python calls without pause.

    A dump walked from a signal handler read that thread's frames as they were freed and
    crashed the worker now and then; crashsight's own thread dumps holding the GIL instead.
    """

    def deep(depth: int) -> int:
        return deep(depth - 1) + 1 if depth else 0

    def churn() -> None:
        while True:
            deep(250)  # past the interpreter's first 16 KiB stack chunk, freed and taken again

    threading.Thread(target=churn, name="churn", daemon=True).start()
    ready()
    time.sleep(FOREVER)


def hold_the_gil() -> None:
    """Sleeps in C without letting go of the GIL, as a stuck C extension can."""
    ready()
    ctypes.PyDLL(None).sleep(int(FOREVER))  # PyDLL: the call keeps the GIL


def nap_ignoring_sigterm_in_c() -> None:
    """Ignores SIGTERM through libc, as an embedded runtime can, behind Python's back."""
    ctypes.CDLL(None).signal(signal.SIGTERM, 1)  # 1: SIG_IGN
    ready()
    time.sleep(FOREVER)


def run_tool() -> None:
    """Runs a tool that never exits; the tool itself says when it runs."""
    script = "echo hang worker ready >&2; exec sleep 3600"
    subprocess.run(["sh", "-c", script], check=False)


def run_tools() -> None:
    """Runs two tools that never exit, and waits for the second."""
    first = subprocess.Popen(["sleep", "3601"])
    second = subprocess.Popen(["sh", "-c", "echo hang worker ready >&2; exec sleep 3602"])
    second.wait()
    first.wait()


def compress_chunk(lock: threading.Lock) -> None:
    """A pool task that deadlocks."""
    lock.acquire()
    ready()
    lock.acquire()


def thread_pool() -> None:
    """Waits for a pool task that never ends."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(compress_chunk, threading.Lock()).result()


async def handle_request() -> None:
    """A coroutine that blocks its event loop with a synchronous deadlock."""
    lock = threading.Lock()
    lock.acquire()
    ready()
    lock.acquire()


def asyncio_service() -> None:
    """An asyncio program whose loop is blocked by one of its coroutines."""
    asyncio.run(handle_request())


def trio_service() -> None:
    """A trio program idle in its event loop, waiting for peers that never come."""
    import trio

    async def wait_for_peers() -> None:
        ready()
        await trio.sleep_forever()

    trio.run(wait_for_peers)


def nap_with_own_handler() -> None:
    """Uses the dump signal for its own purpose; the handler must never run."""

    def on_signal(signum: int, frame: object) -> None:
        print("the program's own handler ran", file=sys.stderr, flush=True)

    signal.signal(signal.Signals[os.environ.get("CRASHSIGHT_DUMP_SIGNAL", "SIGUSR2")], on_signal)
    ready()
    time.sleep(FOREVER)


def encode_shard() -> None:
    """A pool task, in a worker process, that deadlocks."""
    lock = threading.Lock()
    lock.acquire()
    ready()
    lock.acquire()


def process_pool() -> None:
    """Waits for a task of a one-process pool (forked) that never ends."""
    with multiprocessing.get_context("fork").Pool(processes=1) as pool:
        pool.apply(encode_shard)


def blocked_signals() -> None:
    """Blocks every signal, then becomes ``nap_unanswered`` so that every thread inherits it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    os.execv(sys.executable, [sys.executable, __file__, "nap_unanswered"])


def nap_unanswered() -> None:
    """Sleeps with every signal blocked (see `blocked_signals`)."""
    ready()
    time.sleep(FOREVER)


def launcher() -> None:
    """Like torchrun after a failure: stops its surviving worker with SIGTERM, then fails."""
    rank = subprocess.Popen([sys.executable, __file__, "nap"], stdout=subprocess.PIPE)
    assert rank.stdout is not None
    rank.stdout.readline()  # the rank is ready: it registered its dumps at start-up
    _wait_until_asleep(rank.pid)
    rank.terminate()
    rank.wait()
    raise SystemExit(1)


def _wait_until_asleep(pid: int, timeout: float = 60.0) -> None:
    """Wait until ``pid`` sleeps in the kernel (Linux's wchan), not still between ready() and
    its sleep: a SIGTERM in between would find it in ``ready``."""
    deadline = time.monotonic() + timeout
    wchan = f"/proc/{pid}/wchan"
    while os.path.exists(wchan) and time.monotonic() < deadline:
        with open(wchan) as handle:
            if "sleep" in handle.read():
                return
        time.sleep(0.01)


if __name__ == "__main__":
    globals()[sys.argv[1]]()
