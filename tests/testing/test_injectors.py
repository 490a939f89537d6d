"""Every injector, run in a real runner through the real supervisor, gets the verdict its docs promise.

The runs go through the plugin's own ``run_crash`` and ``supervisor`` fixtures and
`assert_verdict`, so crashsight's test suite uses its testing toolkit the way a user's would.
"""

from __future__ import annotations

import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import anyio
import psutil
import pytest

from crashsight import testing
from crashsight.protocol import Heartbeat, Progress
from crashsight.supervisor.status import RunnerFailed
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import SpawnOptions, Supervisor
from crashsight.testing import assert_verdict, assertions, injectors, targets
from crashsight.testing.httpd import local_http_server
from crashsight.testing.plugin import RunCrash


@dataclass(frozen=True)
class Promise:
    """What an injector's docstring says the supervisor reports: verdict and exit."""

    args: tuple[str, ...]
    verdict: str
    code: int | None = None
    signal: str | None = None
    options: SpawnOptions = field(default_factory=lambda: SpawnOptions())


PROMISES = [
    pytest.param(Promise(("segfault",), "crash/segfault", signal="SIGSEGV"), id="segfault"),
    pytest.param(Promise(("abort",), "crash/abort", signal="SIGABRT"), id="abort"),
    pytest.param(Promise(("bus_error",), "crash/bus_error", signal="SIGBUS"), id="bus_error"),
    pytest.param(Promise(("exit", "0"), "succeeded", code=0), id="exit-0"),
    pytest.param(Promise(("exit", "3"), "unknown", code=3), id="exit-3"),
    pytest.param(Promise(("exit", "137"), "crash/killed", code=137), id="exit-137"),
    pytest.param(
        Promise(("raise_", "ValueError", "bad shard 3"), "python/ValueError", code=1), id="raise"
    ),
    pytest.param(
        Promise(("raise_", "queue.Empty"), "python/Empty", code=1), id="raise-qualified-class"
    ),
    pytest.param(Promise(("sigkill",), "crash/killed", signal="SIGKILL"), id="sigkill"),
    pytest.param(
        Promise(
            ("hang",),
            "timeout/no_progress",
            signal="SIGTERM",
            options=SpawnOptions(no_progress_timeout=0.3),
        ),
        id="hang",
    ),
    pytest.param(
        Promise(
            ("hang", "--heartbeat-interval", "0.05"),
            "timeout/deadline",
            signal="SIGTERM",
            options=SpawnOptions(deadline=0.5, no_progress_timeout=5.0),
        ),
        id="hang-heartbeating",
    ),
    pytest.param(Promise(("enospc",), "disk/enospc", code=1), id="enospc"),
    pytest.param(Promise(("memory_error",), "memory/memory_error", code=1), id="memory_error"),
    pytest.param(
        Promise(("emit_signature", "cuda.oom"), "gpu/oom", code=1), id="emit-python-error"
    ),
    pytest.param(
        Promise(
            ("emit_signature", "metal.gpu_timeout", "--sample", "1"),
            "gpu/timeout",
            signal="SIGABRT",
        ),
        id="emit-libcxxabi-terminate",
    ),
    pytest.param(
        Promise(("emit_signature", "glibc.double_free"), "crash/heap_corruption", signal="SIGABRT"),
        id="emit-glibc",
    ),
    pytest.param(
        Promise(("emit_signature", "cxx.terminate"), "crash/abort", signal="SIGABRT"),
        id="emit-evidence-only",
    ),
    pytest.param(Promise(("close_channel",), "succeeded", code=0), id="close_channel"),
    pytest.param(Promise(("exit", "three"), "unknown", code=2), id="bad-target-arguments"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("promise", PROMISES)
async def test_injector_gets_its_documented_verdict(run_crash: RunCrash, promise: Promise) -> None:
    """Each injector, as a target, ends with the verdict and exit its docstring promises."""
    status = await run_crash(*promise.args, **promise.options)
    assert_verdict(status, promise.verdict)
    assert (status.exit.code, status.exit.signal) == (promise.code, promise.signal)


@pytest.mark.asyncio
@pytest.mark.crashsight(stop_policy=StopPolicy(grace=0.3))
async def test_ignore_sigterm_needs_sigkill(supervisor: Supervisor) -> None:
    """A worker ignoring SIGTERM is SIGKILLed after the grace period, and the report says so.

    It is stopped once its heartbeat says it has started ignoring SIGTERM, never before.
    """
    async with supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:ignore_sigterm")
        with anyio.fail_after(60):
            async for event in runner.events():
                if isinstance(event, Heartbeat):
                    break
        status = await runner.stop("enough")
    assert_verdict(status, "cancelled")
    assert status.exit.signal == "SIGKILL"
    assert status.signals_sent == ["SIGTERM", "SIGKILL"]


#: A child that records how its SIGSEGV was sent: a SA_SIGINFO handler installed through ctypes
#: prints the kernel's ``si_code`` and ``si_addr``, then exits, before the signal can kill it.
_SIGINFO_PROBE = """
import ctypes, os, signal, sys

class SigInfo(ctypes.Structure):
    _fields_ = [("signo", ctypes.c_int), ("errno", ctypes.c_int), ("code", ctypes.c_int),
                ("pad", ctypes.c_int), ("addr", ctypes.c_void_p), ("rest", ctypes.c_byte * 112)]

Handler = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(SigInfo), ctypes.c_void_p)

class SigAction(ctypes.Structure):  # glibc's struct sigaction
    _fields_ = [("handler", Handler), ("mask", ctypes.c_byte * 128), ("flags", ctypes.c_int),
                ("restorer", ctypes.c_void_p)]

def report(signo, info, context):
    os.write(1, f"{signo} {info.contents.code} {info.contents.addr or 0}".encode())
    os._exit(0)

handler = Handler(report)
action = SigAction(handler=handler, flags=4)  # SA_SIGINFO
assert ctypes.CDLL(None).sigaction(signal.SIGSEGV, ctypes.byref(action), None) == 0
if sys.argv[1] == "injector":
    from crashsight.testing import injectors
    injectors.segfault()
else:
    import faulthandler
    faulthandler._sigsegv()
"""
_SEGV_MAPERR = 1
_SI_TKILL = -6


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in {"x86_64", "aarch64"},
    reason="the probe's struct sigaction layout is glibc's on x86_64 and aarch64",
)
@pytest.mark.parametrize(
    ("how", "si_code"),
    [
        pytest.param("injector", _SEGV_MAPERR, id="injector-is-a-memory-fault"),
        pytest.param("self-sent", _SI_TKILL, id="faulthandler-sigsegv-is-a-self-sent-signal"),
    ],
)
def test_segfault_is_a_fault_of_the_mmu(how: str, si_code: int) -> None:
    """The segfault injector's SIGSEGV comes from the kernel for an unmapped address (SEGV_MAPERR
    at address 0), unlike ``faulthandler._sigsegv()``, which is ``raise(SIGSEGV)`` (SI_TKILL)."""
    probe = subprocess.run(
        [sys.executable, "-c", _SIGINFO_PROBE, how],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    signo, code, address = map(int, probe.stdout.split())
    assert (signo, code) == (signal.SIGSEGV, si_code)
    if how == "injector":
        assert address == 0


@pytest.fixture
def http_base() -> Iterator[str]:
    """A local HTTP listener on 127.0.0.1 that answers ``/503``, ``/401``... with that status."""
    with local_http_server() as base:
        yield base


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "verdict", "status_code"),
    [
        pytest.param("/503", "http/server_error", "503", id="503"),
        pytest.param("/401", "http/client_error", "401", id="401"),
    ],
)
async def test_http_get_reports_real_http_errors(
    run_crash: RunCrash, http_base: str, path: str, verdict: str, status_code: str
) -> None:
    """A real HTTP error from a local listener is classified with its status code extracted."""
    status = await run_crash("http_get", http_base + path)
    assert_verdict(status, verdict)
    assert any(d.fields.get("status") == status_code for d in status.diagnostics)


@pytest.mark.asyncio
async def test_http_get_to_a_closed_port_is_a_connection_error(run_crash: RunCrash) -> None:
    """Nothing listening on the port: a real ECONNREFUSED, reported as http/connection."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = await run_crash("http_get", f"http://127.0.0.1:{port}/")
    assert_verdict(status, "http/connection")


@pytest.mark.asyncio
async def test_emit_signature_reports_the_catalogue_diagnostic(run_crash: RunCrash) -> None:
    """The emitted sample is found by the collector as that signature's diagnostic."""
    status = await run_crash("emit_signature", "nccl.watchdog_timeout")
    assert_verdict(status, "comm/nccl_timeout")
    assert [d.id for d in status.diagnostics] == ["nccl.watchdog_timeout"]


@pytest.mark.asyncio
async def test_stderr_flood_keeps_the_last_line(run_crash: RunCrash) -> None:
    """Two megabytes of stderr pass through, and the tail ends with the flood's closing line."""
    status = await run_crash("stderr_flood", str(2_000_000))
    assert_verdict(status, "succeeded")
    assert status.stderr_tail[-1] == "stderr_flood: wrote 2000000 bytes"
    assert status.stderr_tail[-2].startswith("crashsight.testing.stderr_flood: ")


@pytest.mark.asyncio
@pytest.mark.crashsight(allow_leftovers=True)
async def test_leave_grandchild_is_killed_by_the_supervisor(run_crash: RunCrash) -> None:
    """The grandchild outlives its runner until the supervisor's sweep kills it."""
    status = await run_crash("leave_grandchild")
    assert_verdict(status, "succeeded")
    announced = next(line for line in status.stderr_tail if "left grandchild" in line)
    pid = int(announced.split()[3])
    assert not _alive(pid)
    assert "killed 1 process the runner left behind" in status.notes


@pytest.mark.asyncio
async def test_garbage_frame_becomes_protocol_issues(run_crash: RunCrash) -> None:
    """Garbage, an oversize header and a torn frame are each reported; the runner still succeeds."""
    status = await run_crash("garbage_frame")
    assert_verdict(status, "succeeded")
    assert [issue.problem for issue in status.protocol_issues] == [
        "garbage",
        "oversize",
        "truncated",
    ]


@pytest.mark.asyncio
async def test_delayed_crash_leaves_tasks_in_flight(supervisor: Supervisor) -> None:
    """A delayed injector sends its countdown inside nested tasks, which the crash leaves open."""
    args = ("--task", "epoch-1", "--task", "shard-7", "--after-events", "3")
    async with supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:segfault", *args)
        events = [event async for event in runner.events()]
    status = events[-1]
    assert isinstance(status, RunnerFailed)
    assert_verdict(status, "crash/segfault")
    assert [e.message for e in events if isinstance(e, Progress)] == [
        "injecting in 3",
        "injecting in 2",
        "injecting in 1",
    ]
    assert status.tasks.in_flight == ["epoch-1", "shard-7"]


@pytest.mark.asyncio
async def test_hang_stopped_on_request_is_cancelled(supervisor: Supervisor) -> None:
    """A hanging worker stopped on request is cancelled, not failed."""
    async with supervisor:
        runner = await supervisor.spawn("crashsight.testing.targets:hang")
        status = await runner.stop("enough")
    assert_verdict(status, "cancelled")
    assert status.exit.signal == "SIGTERM"


@pytest.mark.asyncio
async def test_delayed_exception_fails_its_task(run_crash: RunCrash) -> None:
    """An exception injected inside a task finishes that task as failed, after the wait."""
    started = time.monotonic()
    status = await run_crash("enospc", "--task", "write-shard", "--after-seconds", "0.2")
    assert time.monotonic() - started >= 0.2
    assert_verdict(status, "disk/enospc")
    assert status.tasks.in_flight == []
    assert [(t.task_id, t.error) for t in status.tasks.failed] == [
        ("write-shard", "OSError: [Errno 28] No space left on device")
    ]


def test_enospc_without_dev_full_refuses_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /dev/full is missing, enospc raises a clear NotImplementedError instead of faking."""
    monkeypatch.setattr(injectors, "_FULL_DEVICE", "/nonexistent/full")
    with pytest.raises(NotImplementedError, match=r"raise_\(OSError\(errno.ENOSPC"):
        injectors.enospc()


def test_memory_error_without_enforced_rlimit_still_really_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without RLIMIT_AS (macOS), an allocation larger than any address space fails in malloc."""
    monkeypatch.setattr(injectors, "_address_space_bytes", lambda: None)
    with pytest.raises(MemoryError):
        injectors.memory_error()


@pytest.mark.parametrize("injector", [injectors.close_channel, injectors.garbage_frame])
def test_channel_injectors_need_a_runner(injector: Callable[[], None]) -> None:
    """Outside a supervisor there is no channel to break, and the injectors say so."""
    with pytest.raises(RuntimeError, match="run it under a Supervisor"):
        injector()


def test_bad_parameters_are_rejected_before_injecting() -> None:
    """Negative delays, a non-positive heartbeat interval and unknown signature ids raise."""
    with pytest.raises(ValueError, match="after_events"):
        injectors.delayed(injectors.abort, after_events=-1)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        injectors.hang(heartbeat_interval=0)
    with pytest.raises(KeyError, match=r"did you mean 'cuda.oom'"):
        injectors.emit_signature("cuda.oomm")


def test_every_target_is_named_after_its_injector() -> None:
    """Each target runs the injector of its name; the package re-exports its modules' __all__."""
    assert set(targets.__all__) == set(injectors.__all__) - {"delayed"}
    for name in targets.__all__:
        assert getattr(targets, name).__name__ == name
    assert set(testing.__all__) == {*injectors.__all__, *assertions.__all__}
    for name in testing.__all__:
        assert getattr(testing, name) is getattr(injectors, name, getattr(assertions, name, None))


def test_injectors_stay_light() -> None:
    """Workers import the injectors and targets without anyio, psutil, pytest or the supervisor,
    and without pydantic, typing or what only one injector needs (ctypes, subprocess, tempfile,
    mmap): each injected crash starts a runner, and those were 12 ms of its start."""
    code = (
        "import sys, crashsight.testing.targets;"
        "heavy = ('anyio', 'psutil', 'pytest', 'crashsight.supervisor', 'pydantic', 'typing',"
        " 'ctypes', 'subprocess', 'tempfile', 'mmap');"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
