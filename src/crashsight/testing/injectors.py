"""Crash injectors: functions that make a runner really fail, for testing what crashsight reports.

Each injector runs inside a runner, called from the worker's own code or as a bootstrap target
(see `crashsight.testing.targets`), and makes its failure really happen: a real SIGSEGV from an
invalid memory access, a real ENOSPC from the kernel, a real MemoryError from a refused allocation. Each docstring's
*Reported as* says what the supervisor then concludes: the verdict (``category/subcategory``, as
`crashsight.testing.assert_verdict` spells it) and the exit.

Failures that need hardware a test machine lacks (GPUs, Metal, NCCL) are doubled by
`emit_signature`, which prints the text the real library prints and ends the process the way that
library does. `delayed` puts an injector behind some events and open tasks, so a crash can be
tested with work in flight.

This module runs in every worker that uses it, so like `crashsight.runner` it imports the standard
library and crashsight's wire modules only: never anyio, psutil or the supervisor. What one
injector needs (ctypes, mmap, subprocess, tempfile) it imports when it runs, and types are for the
type checker only: a crash-injection runner is started for each injected crash, and those imports
(with typing) were 12 ms of its start, measured side by side.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import ExitStack

from .. import runner
from ..framing import MAGIC
from ..runner.api import current_channel

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn

__all__ = [
    "abort",
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
]

#: A device whose every write fails with ENOSPC (Linux, and the BSDs that have it).
_FULL_DEVICE = "/dev/full"
#: What a refused allocation asks for, on top of the address space the worker already uses.
_ALLOCATION = 256 << 20
#: A request no 64-bit address space can hold: refused by malloc before any page is touched.
_IMPOSSIBLE_ALLOCATION = 1 << 62
#: How long a grandchild left behind lives if nothing kills it.
_GRANDCHILD_LIFETIME_S = 600
#: Texts printed by a C or C++ runtime just before it calls abort().
_ABORTING_TEXTS = ("libc++abi: terminating", "terminate called after throwing")


def segfault() -> NoReturn:
    """Write one byte to address 0, as a C extension's null-pointer bug does: a real SIGSEGV.

    No page is mapped at address 0, so the MMU faults and the kernel sends SIGSEGV with
    ``si_code`` ``SEGV_MAPERR`` and ``si_addr`` 0, exactly as for a native crash. (CPython's
    ``faulthandler._sigsegv()`` only calls ``raise(SIGSEGV)``, a signal the process sends itself,
    with ``si_code`` ``SI_TKILL``.) The write goes through ``memset`` so that the innermost Python
    frame of faulthandler's dump is the caller's, not a ctypes helper's.

    Reported as ``crash/segfault``: killed by signal SIGSEGV, with faulthandler's
    ``Fatal Python error: Segmentation fault`` and Python stack in the stderr tail.
    """
    import ctypes

    ctypes.memset(0, 0, 1)
    raise AssertionError("unreachable: writing to address 0 did not kill the process")


def abort() -> NoReturn:
    """Call the C library's ``abort()``, as a failed native assertion does.

    Reported as ``crash/abort``: killed by signal SIGABRT (core dumped where cores are enabled).
    """
    os.abort()


def bus_error() -> NoReturn:
    """Touch a memory-mapped page whose file was truncated underneath it: a real SIGBUS.

    This is how a full ``/dev/shm`` or a log rotated under an ``mmap`` kills real workers. POSIX
    systems (Linux, macOS, the BSDs) deliver SIGBUS for the touch; where one would not, the signal
    is raised directly, so the process still dies of a genuine SIGBUS.

    Reported as ``crash/bus_error``: killed by signal SIGBUS.
    """
    import mmap
    import tempfile

    with tempfile.TemporaryFile() as backing:
        backing.truncate(mmap.PAGESIZE)
        page = mmap.mmap(backing.fileno(), mmap.PAGESIZE)
        backing.truncate(0)
        _ = page[0]
    signal.raise_signal(signal.SIGBUS)
    raise AssertionError("unreachable: SIGBUS did not kill the process")


def exit(code: int) -> NoReturn:
    """End the process at once with status ``code``, as C's ``_exit`` does: no Python cleanup.

    Reported as: `RunnerSucceeded` for 0; ``crash/killed`` for 137 (a shell's report of SIGKILL);
    ``unknown`` for other codes, since a bare status explains nothing; in-flight tasks stay in
    flight.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    os._exit(code)


def raise_(exc: BaseException | type[BaseException]) -> NoReturn:
    """Raise ``exc`` (an instance or a class) out of the worker's code.

    Reported as ``python/<Type>`` with exit status 1 and the exception structured over the channel,
    unless a more specific rule explains it: an ENOSPC `OSError` is ``disk/enospc``, a
    `MemoryError` is ``memory/memory_error``, a message holding a catalogue text is that text's
    verdict. `SystemExit` keeps its code, as in any Python program.
    """
    raise exc


def sigkill() -> NoReturn:
    """Send SIGKILL to this process, as a scheduler or a person with ``kill -9`` does.

    Reported as ``crash/killed``: killed by signal SIGKILL. (``memory/oom_killed`` needs the
    cgroup's OOM counter to move, which only the kernel's OOM killer does.)
    """
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL did not kill the process")


def hang(heartbeat_interval: float | None = None) -> NoReturn:
    """Stop making progress forever, after one heartbeat that proves the worker started.

    Args:
        heartbeat_interval: Keep sending heartbeats this often, so the worker looks alive and only
            a deadline can stop it (a busy loop that never finishes).

    Reported as ``timeout/no_progress`` under a no-progress timeout, ``timeout/deadline`` under a
    deadline (killed by the supervisor's SIGTERM), or `RunnerCancelled` when stopped on request.

    Raises:
        ValueError: ``heartbeat_interval`` is not positive.
    """
    if heartbeat_interval is not None and heartbeat_interval <= 0:
        raise ValueError(f"heartbeat_interval must be > 0 seconds, got {heartbeat_interval}")
    runner.heartbeat()
    while True:
        time.sleep(heartbeat_interval or 3600)
        if heartbeat_interval is not None:
            runner.heartbeat()


def ignore_sigterm() -> NoReturn:
    """Ignore SIGTERM, then `hang`: the worker that only SIGKILL can stop.

    Reported as ``timeout/deadline`` (or ``timeout/no_progress``) killed by signal SIGKILL after
    the stop policy's grace period, with ``signals_sent == ["SIGTERM", "SIGKILL"]`` and a note
    about the grace period; `RunnerCancelled` with SIGKILL when stopped on request.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hang()


def enospc() -> NoReturn:
    """Write to ``/dev/full``: a real ``OSError: [Errno 28] No space left on device``.

    Reported as ``disk/enospc`` with exit status 1.

    Raises:
        OSError: ENOSPC, from the kernel.
        NotImplementedError: This platform has no ``/dev/full`` (macOS): no unprivileged way to
            fill a filesystem exists there, and crashsight will not pretend. For the same verdict
            from a synthetic error, use ``raise_(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))``.
    """
    if not os.path.exists(_FULL_DEVICE):
        raise NotImplementedError(
            f"enospc() needs {_FULL_DEVICE}, which this platform does not have; "
            "raise_(OSError(errno.ENOSPC, ...)) gives the same verdict from a synthetic error"
        )
    with open(_FULL_DEVICE, "wb", buffering=0) as full:
        full.write(b"\0")
    raise AssertionError(f"unreachable: a write to {_FULL_DEVICE} succeeded")


def memory_error() -> NoReturn:
    """Make an allocation fail under a lowered ``RLIMIT_AS``: a real MemoryError, machine unharmed.

    On Linux the address-space limit is lowered to what the worker uses plus a little, an
    allocation larger than that is refused by the kernel, and the old limit is restored before the
    error propagates, so reporting it has memory to work with. Where ``RLIMIT_AS`` is not enforced
    (macOS), the request is one no 64-bit address space can hold; it fails just as really, in
    ``malloc``, with nothing committed.

    Reported as ``memory/memory_error`` with exit status 1.
    """
    in_use = _address_space_bytes()
    if in_use is None:
        bytearray(_IMPOSSIBLE_ALLOCATION)
    else:
        import resource  # POSIX only, and only this injector needs it

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        lowered = in_use + _ALLOCATION // 4
        if hard != resource.RLIM_INFINITY:
            lowered = min(lowered, hard)
        resource.setrlimit(resource.RLIMIT_AS, (lowered, hard))
        try:
            bytearray(_ALLOCATION)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    raise AssertionError("unreachable: the allocation succeeded")


def _address_space_bytes() -> int | None:
    """This process's virtual memory size, or None where the kernel does not enforce RLIMIT_AS."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGESIZE")
    except OSError:
        return None


def emit_signature(signature_id: str, sample: int = 0) -> NoReturn:
    """Print a catalogue signature's real sample text to fd 2, then die the way its library does.

    A test double for failures that need hardware a test machine lacks: CUDA, Metal, NCCL, a
    full ``/dev/shm``. The text goes out with one ``os.write(2, ...)``, as C libraries write it,
    bypassing Python's buffering. The exit follows the library: texts of a C or C++ runtime that
    then aborts (libc++abi and libstdc++ terminate handlers, glibc heap checks) end in
    ``abort()``; every other text, usually the last line of a Python traceback, ends with status
    1 as Python does after an uncaught exception. Only the line is written, not a traceback.

    Args:
        signature_id: A catalogue id, such as ``"cuda.oom"``.
        sample: Which of the signature's samples to print.

    Reported as the signature's own ``category/subcategory`` (``cuda.oom`` → ``gpu/oom``), with
    the diagnostic in ``status.diagnostics``; evidence-only signatures (``cxx.*``) are reported
    as ``crash/abort``.

    Raises:
        KeyError: No catalogue signature has this id; the message names the closest ids.
        IndexError: The signature has no such sample.
    """
    from ..diagnostics.catalogue import signature_by_id  # pydantic only, but not every worker's

    signature = signature_by_id(signature_id)
    text = signature.samples[sample]
    os.write(2, text.encode() + b"\n")
    if text.startswith(_ABORTING_TEXTS) or signature_id.startswith("glibc."):
        abort()
    exit(1)


def http_get(url: str, timeout: float = 10.0) -> None:
    """Fetch ``url`` with urllib and let any error propagate, as a downloader would.

    A real HTTP failure, for tests that run a local listener: a 503 is reported as
    ``http/server_error`` and a 401 as ``http/client_error`` (with the status in the diagnostic's
    fields), a read that outlasts ``timeout`` as ``http/timeout``, a closed port as
    ``http/connection``. A successful fetch returns.
    """
    import urllib.request  # only this injector needs it; every worker imports this module

    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()


def stderr_flood(n_bytes: int) -> None:
    """Write ``n_bytes`` of 80-byte lines to fd 2, then one line saying how many, and return.

    For testing that the supervisor keeps up with (and stays bounded by) a worker that prints far
    more than anyone reads. The worker carries on afterwards; as a target it then exits 0.

    Reported as whatever the worker does next (as a target: `RunnerSucceeded`), with
    ``stderr_flood: wrote N bytes`` as the last line of the stderr tail.
    """
    line = b"crashsight.testing.stderr_flood: " + b"x" * 46 + b"\n"
    chunk = memoryview(line * 1024)
    remaining = n_bytes
    while remaining > 0:
        remaining -= os.write(2, chunk[: min(remaining, len(chunk))])
    os.write(2, f"stderr_flood: wrote {n_bytes} bytes\n".encode())


def leave_grandchild(*, hold_stderr: bool = False) -> int:
    """Start a sleeping grandchild in a session of its own, escaping the runner's process group.

    The grandchild announces itself on stderr (``crashsight.testing: left grandchild PID
    running``) and sleeps for ten minutes unless killed. It inherits ``CRASHSIGHT_RUNNER_ID``, which
    is how the supervisor finds and kills it once the runner is done.

    Args:
        hold_stderr: Give the grandchild the runner's stdout and stderr, as a careless daemon
            does, so the runner's output stays open after the runner exits.

    Returns:
        The grandchild's pid; the worker carries on.

    Reported as whatever the worker does next (as a target: `RunnerSucceeded`), with a note that
    crashsight killed the process the runner left behind.
    """
    import subprocess

    output = None if hold_stderr else subprocess.DEVNULL
    grandchild = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", f"import time; time.sleep({_GRANDCHILD_LIFETIME_S})"],
        start_new_session=True,
        stdout=output,
        stderr=output,
    )
    print(f"crashsight.testing: left grandchild {grandchild.pid} running", file=sys.stderr)
    sys.stderr.flush()
    return grandchild.pid


def close_channel() -> None:
    """Close the channel's descriptor behind crashsight's back, as fd-closing libraries do.

    Models a daemonising library that closes every descriptor it did not open. Later events are
    lost, but the worker carries on and the supervisor still reports its end.

    Reported as whatever the worker does next (as a target: `RunnerSucceeded`).

    Raises:
        RuntimeError: This process is not a supervised runner.
    """
    os.close(_channel_fd())


def garbage_frame() -> None:
    """Write garbage to the channel: 4 KiB of random bytes, then a frame that declares 50 MiB.

    The declared payload never arrives, so the supervisor skips everything sent afterwards and
    the stream ends mid-frame. The worker carries on.

    Reported as whatever the worker does next (as a target: `RunnerSucceeded`), with
    ``protocol_issues`` ``garbage``, ``oversize`` and, at the end, ``truncated``.

    Raises:
        RuntimeError: This process is not a supervised runner.
    """
    fd = _channel_fd()
    # Without 0xFF (the frame marker) the random bytes are one run of garbage, reported once.
    os.write(fd, os.urandom(4096).replace(b"\xff", b"\x00"))
    os.write(fd, MAGIC + (50 << 20).to_bytes(4, "big"))
    os.write(fd, b"{" * 1000)


def _channel_fd() -> int:
    channel = current_channel()
    if channel is None or channel.fileno() == -1:
        raise RuntimeError("this injector needs a runner's channel: run it under a Supervisor")
    return channel.fileno()


def delayed(
    injector: Callable[[], object],
    *,
    after_events: int = 0,
    after_seconds: float = 0.0,
    tasks: str | Sequence[str] = (),
) -> None:
    """Call ``injector`` inside open tasks, after some events and some time.

    Crashes in real workers happen mid-work: tasks are open and events have gone out. This opens
    ``tasks`` (nested, outermost first) with `crashsight.runner.task`, sends ``after_events``
    `Progress` events, sleeps ``after_seconds``, then calls ``injector`` in the innermost task.
    Give an injector its arguments with a lambda or `functools.partial`::

        delayed(lambda: exit(3), after_events=5, tasks="shard-7")

    Args:
        injector: What to call last.
        after_events: Progress events to send first, counting down to the injection.
        after_seconds: Seconds to wait, after the events.
        tasks: Task id, or ids, open when the injector runs.

    Reported as the injector is; tasks open when the process dies are in ``tasks.in_flight``
    (and in one `ErrorChunk` each), tasks an exception left are in ``tasks.failed``.

    Raises:
        ValueError: A count or duration is negative.
    """
    if after_events < 0 or after_seconds < 0:
        raise ValueError(
            f"after_events and after_seconds must be >= 0, got {after_events}, {after_seconds}"
        )
    with ExitStack() as stack:
        for task_id in (tasks,) if isinstance(tasks, str) else tasks:
            stack.enter_context(runner.task(task_id))
        for sent in range(after_events):
            runner.progress(f"injecting in {after_events - sent}", fraction=sent / after_events)
        if after_seconds:
            time.sleep(after_seconds)
        injector()
