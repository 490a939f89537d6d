"""Every verdict of the taxonomy, end to end: a real child fails, the real supervisor explains it.

One table drives every ``category/subcategory`` that ``default_rules.toml`` documents through a real
`Supervisor`. Where this machine can make the failure happen, it does (``kind="real"``: a real
SIGSEGV, ``/dev/full``, a 503 from a local HTTP server, ...). ``memory/oom_killed`` is proved by a
real kernel OOM kill in tests/diagnostics/test_oom.py, where crashsight itself runs inside a memory
cgroup of the test's own (an in-process supervisor would read the counters of pytest's group).
GPU, NCCL and MLX ring failures need hardware, so their children write the text the real process
prints and die the way it dies (``kind="text"``; the texts and their sources are in
``tests/verdict_workers.py``). The precedence rows at the end pin the order of the tiers: a root
cause wins over the failures it leads to.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Literal

import pytest

from crashsight.supervisor.cgroup import CgroupMode
from crashsight.supervisor.status import RunnerFailed
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import SpawnOptions, Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "verdict_workers.py"


@dataclass(frozen=True)
class Case:
    """One row: how the child fails, and what crashsight must conclude.

    Attributes:
        verdict: Expected ``category/subcategory`` (``unknown`` alone for no verdict).
        worker: Function in ``verdict_workers.py``.
        args: Its arguments; ``{}`` is replaced by the value of the ``needs`` fixture.
        kind: ``real`` when the failure really happens, ``text`` when its real text is replayed.
        exit: Expected signal name, or exit code.
        plain: Run as a plain program rather than under the runner bootstrap.
        no_site: Start that program with ``python -S``: without ``site``, crashsight's ``.pth``
            hook does not load, so an exception exists only as the traceback text on stderr (as in
            any interpreter without crashsight installed).
        signature: A catalogue id that must be among the diagnostics, with ``fields`` among its
            extracted fields.
        source: Expected origin of the termination error, when one is expected.
        needs: A fixture whose value the args need; when it is None (the host cannot provide the
            real fault), ``fallback`` runs instead.
    """

    verdict: str
    worker: str
    args: tuple[str, ...] = ()
    kind: Literal["real", "text"] = "real"
    exit: str | int = 1
    plain: bool = False
    no_site: bool = False
    signature: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    source: Literal["channel", "stderr"] | None = None
    needs: str | None = None
    fallback: Case | None = None
    options: SpawnOptions = field(default_factory=lambda: SpawnOptions())


def text(
    verdict: str,
    *names: str,
    die: str = "1",
    signature: str | None = None,
    fields: Mapping[str, str] | None = None,
    source: Literal["channel", "stderr"] | None = None,
) -> Case:
    """A row whose plain-program child replays real texts to fd 2, then dies as ``die`` says."""
    exit: str | int = {"abort": "SIGABRT", "segfault": "SIGSEGV"}.get(die) or int(die)
    return Case(
        verdict,
        "replay",
        (*names, die),
        kind="text",
        exit=exit,
        plain=True,
        signature=signature,
        fields=fields or {},
        source=source,
    )


# fmt: off
CASES = [
    # --- gpu: texts of PyTorch/CUDA and MLX/Metal, the way the process ends after printing them.
    pytest.param(
        text("gpu/oom", "CUDA_OOM", signature="cuda.oom", fields={"size": "20.00 MiB", "gpu": "0"}, source="stderr"),
        id="gpu-oom",
    ),
    pytest.param(
        text("gpu/timeout", "METAL_TIMEOUT", die="abort", signature="metal.gpu_timeout", fields={"code": "00000002"}),
        id="gpu-timeout-metal",
    ),
    pytest.param(
        text("gpu/illegal_address", "CUDA_ILLEGAL_ADDRESS", signature="cuda.illegal_address"),
        id="gpu-illegal-address",
    ),
    pytest.param(
        text("gpu/device_assert", "CUDA_DEVICE_ASSERT", signature="cuda.kernel_assert", fields={"line": "92"}),
        id="gpu-device-assert",
    ),
    pytest.param(text("gpu/hardware", "CUDA_ECC", signature="cuda.ecc"), id="gpu-hardware-ecc"),
    pytest.param(
        text("gpu/library", "CUDNN_INTERNAL", signature="cudnn.status", fields={"status": "INTERNAL_ERROR"}),
        id="gpu-library-cudnn",
    ),
    # --- comm: MLX ring and NCCL texts.
    pytest.param(
        text("comm/ring_abort", "RING_PEER_LOST", signature="ring.peer_lost"), id="comm-ring-abort"
    ),
    pytest.param(
        text(
            "comm/nccl_timeout", "NCCL_WATCHDOG", die="abort", signature="nccl.watchdog_timeout",
            fields={"rank": "1", "seq": "9141", "op": "_ALLGATHER_BASE", "timeout_ms": "600000"},
        ),
        id="comm-nccl-timeout",
    ),
    pytest.param(
        text("comm/nccl", "NCCL_SYSTEM_ERROR", signature="nccl.error", fields={"version": "2.18.6"}),
        id="comm-nccl",
    ),
    # --- memory
    pytest.param(
        Case("memory/memory_error", "memory_error", signature="python.memory_error", source="channel"),
        id="memory-error-rlimit-as",
    ),
    pytest.param(
        text("memory/shm", "DATALOADER_SHM", signature="torch.shm_bus_error"), id="memory-shm"
    ),
    # --- disk: real errnos from the kernel.
    pytest.param(
        Case("disk/enospc", "write_dev_full", signature="python.enospc", fields={"errno": "28", "errno_name": "ENOSPC"}),
        id="disk-enospc-dev-full",
    ),
    pytest.param(
        Case(
            "disk/quota", "key_quota", signature="python.edquot", fields={"errno_name": "EDQUOT"},
            needs="key_quota_enforced",
            fallback=text("disk/quota", "EDQUOT", signature="python.edquot", fields={"errno_name": "EDQUOT"}),
        ),
        id="disk-quota",
    ),
    pytest.param(
        Case(
            "disk/readonly", "write_into", ("{}",), signature="python.erofs", fields={"errno_name": "EROFS"},
            needs="readonly_dir",
            fallback=text("disk/readonly", "EROFS", signature="python.erofs", fields={"errno_name": "EROFS"}),
        ),
        id="disk-readonly-mount",
    ),
    pytest.param(
        Case("disk/io_error", "io_error", signature="python.eio", fields={"errno_name": "EIO"}),
        id="disk-io-error",
    ),
    # --- http: urllib against listeners on 127.0.0.1.
    pytest.param(
        Case("http/server_error", "http_get", ("{}/status/503",), signature="urllib.http_5xx", fields={"status": "503"}, needs="http_server"),
        id="http-503",
    ),
    pytest.param(
        Case("http/client_error", "http_get", ("{}/status/401",), signature="urllib.http_4xx", fields={"status": "401"}, needs="http_server"),
        id="http-401",
    ),
    pytest.param(
        Case("http/timeout", "http_get", ("{}", "0.5"), signature="python.socket_timeout", needs="silent_url"),
        id="http-read-timeout",
    ),
    pytest.param(
        Case("http/connection", "http_get", ("{}",), signature="python.connection_refused", fields={"errno_name": "ECONNREFUSED"}, needs="closed_url"),
        id="http-connection-refused",
    ),
    # --- crash: real fatal signals, with faulthandler's report from the bootstrap.
    pytest.param(Case("crash/segfault", "segfault", exit="SIGSEGV", signature="faulthandler.segfault"), id="crash-segfault"),
    pytest.param(Case("crash/abort", "abort", exit="SIGABRT", signature="faulthandler.abort"), id="crash-abort"),
    pytest.param(Case("crash/bus_error", "bus_error", exit="SIGBUS", signature="faulthandler.bus_error"), id="crash-bus-error"),
    pytest.param(
        Case("crash/illegal_instruction", "illegal_instruction", exit="SIGILL", signature="faulthandler.illegal_instruction"),
        id="crash-illegal-instruction",
    ),
    pytest.param(Case("crash/fpe", "fpe", exit="SIGFPE", signature="faulthandler.fpe"), id="crash-fpe"),
    pytest.param(
        Case("crash/heap_corruption", "double_free", exit="SIGABRT", signature="glibc.double_free"),
        id="crash-heap-corruption-double-free",
    ),
    pytest.param(Case("crash/killed", "sigkill", exit="SIGKILL"), id="crash-killed"),
    # --- timeout: the supervisor's watchdogs.
    pytest.param(
        Case("timeout/deadline", "busy", exit="SIGTERM", options=SpawnOptions(deadline=1.0)),
        id="timeout-deadline",
    ),
    pytest.param(
        Case("timeout/no_progress", "hang", exit="SIGTERM", options=SpawnOptions(no_progress_timeout=0.5)),
        id="timeout-no-progress",
    ),
    # --- python and unknown
    pytest.param(Case("python/ValueError", "value_error", source="channel"), id="python-exception"),
    pytest.param(Case("unknown", "exit_three", exit=3), id="unknown-exit-3"),
    # --- precedence: the root cause wins.
    pytest.param(
        text(
            "comm/ring_socket", "RING_SOCKET", die="abort", signature="ring.socket_errno",
            fields={"errno": "104", "errno_name": "ECONNRESET"},
        ),
        id="precedence-ring-socket-over-ring-abort-and-sigabrt",
    ),
    pytest.param(
        text("gpu/oom", "CUDA_OOM", die="segfault", signature="cuda.oom"),
        id="precedence-cuda-oom-over-later-segfault",
    ),
    pytest.param(
        Case("disk/enospc", "enospc_wrapped", signature="python.enospc", source="channel"),
        id="precedence-enospc-wrapped-in-runtime-error",
    ),
    pytest.param(
        Case("python/KeyError", "key_error", plain=True, no_site=True, source="stderr"),
        id="precedence-plain-program-traceback-from-stderr",
    ),
]
# fmt: on


class _StatusHandler(BaseHTTPRequestHandler):
    """Answers ``GET /status/N`` with status N and an empty body."""

    def do_GET(self) -> None:
        self.send_response(int(self.path.rsplit("/", 1)[-1]))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test's stderr quiet."""


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 in a thread, stopped and joined after the test."""
    server = HTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, name="status-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listener whose connections the kernel accepts and nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/shards/7"


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A local port that is bound but not listening, so connecting is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}/"


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path | None]:
    """A read-only tmpfs mount, or None where this process may not mount (not root)."""
    target = tmp_path / "ro"
    target.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(target)],
            capture_output=True,
            check=False,
        )
    except OSError:
        yield None
        return
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def key_quota_enforced() -> str | None:
    """``""`` when add_key(2) really fails with EDQUOT here, else None.

    None where a seccomp filter (Docker's default profile blocks add_key) or another kernel stands
    in the way; the row then replays the text instead.
    """
    probe = subprocess.run(
        [sys.executable, str(WORKERS), "key_quota"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return "" if "[Errno 122]" in probe.stderr else None


def _resolve(case: Case, request: pytest.FixtureRequest) -> Case:
    """Fill in the fixture value the case needs, or fall back to its text twin."""
    if case.needs is None:
        return case
    value = request.getfixturevalue(case.needs)
    if value is None:
        if case.fallback is None:
            pytest.skip(f"{case.needs} is not available on this host")
        return case.fallback
    return replace(case, args=tuple(arg.format(value) for arg in case.args))


async def _run(case: Case, cwd: Path) -> RunnerFailed:
    # The OOM row proves the evidence read from a memory cgroup the worker shares with others
    # (its group is the test's, not one of its own): runner cgroups are off for it. A runner's own
    # cgroup is covered by tests/supervisor/test_cgroup.py.
    cgroup: CgroupMode = "off" if case.needs == "oom_cgroup" else "auto"
    async with Supervisor(
        output="discard", stop_policy=StopPolicy(grace=2.0), cgroup=cgroup
    ) as supervisor:
        options: SpawnOptions = {**case.options, "cwd": cwd}
        if case.plain:
            flags = ["-S"] if case.no_site else []
            argv = [sys.executable, *flags, str(WORKERS), case.worker, *case.args]
            runner = await supervisor.spawn_command(argv, **options)
        else:
            runner = await supervisor.spawn(f"{WORKERS}:{case.worker}", *case.args, **options)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed), status
    return status


@pytest.mark.asyncio
@pytest.mark.parametrize("case", CASES)
async def test_verdict_end_to_end(
    case: Case, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A child that really fails (or prints the real text and dies) gets the documented verdict.

    The verdict, the exit, the signature that explains it with its extracted fields, and where the
    termination error came from all match what the child did.
    """
    case = _resolve(case, request)
    status = await _run(case, tmp_path)
    verdict = status.category + (f"/{status.subcategory}" if status.subcategory else "")
    assert verdict == case.verdict, (status.summary, status.rule, status.stderr_tail[-5:])
    assert status.summary.startswith((f"{verdict}: ", f"{verdict} in child "))
    if isinstance(case.exit, str):
        assert status.exit.signal == case.exit
    else:
        assert status.exit.code == case.exit
    if case.signature is not None:
        found = {d.id: d for d in status.diagnostics}
        assert case.signature in found, sorted(found)
        assert dict(case.fields).items() <= found[case.signature].fields.items()
    if case.source is not None:
        assert status.termination_error is not None
        assert status.termination_error.source == case.source
