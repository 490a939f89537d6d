"""Workers in other runtimes fail for real; the cause inside their fatal text is the verdict.

Tiny programs (``tests/runtime_programs/``) are compiled once per session with this machine's
rustc, g++ (plain and with AddressSanitizer + UndefinedBehaviorSanitizer) and javac, or run with
node, and each fails for real: a write to ``/dev/full``, an allocation over ``RLIMIT_AS`` or a
heap limit, a null dereference, an uncaught exception. A missing runtime skips its rows with the
reason. Go is covered by the catalogue's samples only while no Go toolchain is installed here.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crashsight.report.model import Report
from crashsight.report.terminal import render_verdict
from crashsight.supervisor.status import RunnerFailed
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

PROGRAMS = Path(__file__).resolve().parent.parent / "runtime_programs"
CHILD_WORKERS = Path(__file__).resolve().parent.parent / "child_workers.py"
#: An address-space limit (KiB) under which a 1 GiB allocation fails but the runtime starts.
_RLIMIT_AS_KIB = 512 * 1024


@dataclass(frozen=True)
class Program:
    """A compiled (or interpreted) test program: the argv prefix that runs it."""

    argv: tuple[str, ...]


def _compile(tool: str, *args: str) -> None:
    """Run a compiler; a failure shows its output rather than a bare exit status."""
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def _need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed on this machine (CI has it)")
    return found


@pytest.fixture(scope="session")
def rust(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """``fail.rs`` compiled once per session with rustc."""
    rustc = _need("rustc")
    binary = tmp_path_factory.mktemp("rust") / "fail"
    _compile(rustc, "-O", "-o", str(binary), str(PROGRAMS / "fail.rs"))
    return Program((str(binary),))


@pytest.fixture(scope="session")
def toktx(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """``toktx.cpp`` compiled once per session with g++, as a native tool named ``toktx``."""
    gxx = _need("g++")
    binary = tmp_path_factory.mktemp("cxx") / "toktx"
    _compile(gxx, "-O0", "-o", str(binary), str(PROGRAMS / "toktx.cpp"))
    return Program((str(binary),))


@pytest.fixture(scope="session")
def toktx_sanitized(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """``toktx.cpp`` with AddressSanitizer and UndefinedBehaviorSanitizer, stopping on the first.

    UBSan's null check is left out so that a null dereference reaches ASan's SEGV report.
    """
    gxx = _need("g++")
    binary = tmp_path_factory.mktemp("asan") / "toktx"
    flags: tuple[str, ...] = ("-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize=null")
    flags = (*flags, "-fno-sanitize-recover=all")
    try:
        _compile(gxx, *flags, "-o", str(binary), str(PROGRAMS / "toktx.cpp"))
    except AssertionError as exc:
        pytest.skip(f"g++ cannot build with the sanitizers here (libasan/libubsan missing): {exc}")
    return Program((str(binary),))


@pytest.fixture(scope="session")
def java(tmp_path_factory: pytest.TempPathFactory) -> Program:
    """``Fail.java`` compiled once per session with javac, run with a 32 MiB heap."""
    javac = _need("javac")
    java = _need("java")
    classes = tmp_path_factory.mktemp("java")
    _compile(javac, "-d", str(classes), str(PROGRAMS / "Fail.java"))
    return Program((java, "-Xmx32m", "-Xss512k", "-cp", str(classes), "Fail"))


@pytest.fixture(scope="session")
def node() -> Program:
    """``fail.js`` with node and a 16 MiB old-space heap limit."""
    return Program((_need("node"), "--max-old-space-size=16", str(PROGRAMS / "fail.js")))


@pytest.fixture
def closed_port() -> Iterator[str]:
    """A local port that is bound but not listening, so connecting is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield str(bound.getsockname()[1])


def _limited(argv: tuple[str, ...]) -> list[str]:
    """``argv`` under an address-space limit, set by the shell the way operators do."""
    return ["sh", "-c", f'ulimit -v {_RLIMIT_AS_KIB} && exec "$@"', "sh", *argv]


async def _run(argv: list[str], cwd: Path) -> RunnerFailed:
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=2.0)) as supervisor:
        runner = await supervisor.spawn_command(argv, cwd=cwd)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed), status
    return status


# (program fixture, mode, under RLIMIT_AS, expected verdict, expected signature)
# fmt: off
CASES = [
    pytest.param("rust", "devfull", False, "disk/enospc", "rust.storage_full", id="rust-panic-storage-full"),
    pytest.param("rust", "alloc", True, "memory/memory_error", "rust.alloc_failed", id="rust-alloc-rlimit-as"),
    pytest.param("rust", "none", False, "crash/panic", "rust.panic", id="rust-plain-panic"),
    pytest.param("node", "devfull", False, "disk/enospc", "node.enospc", id="node-enospc"),
    pytest.param("node", "refused", False, "http/connection", "node.connection", id="node-econnrefused"),
    pytest.param("node", "heap", False, "memory/memory_error", "node.heap_oom", id="node-heap-limit"),
    pytest.param("node", "throw", False, "crash/uncaught_exception", "node.uncaught", id="node-uncaught"),
    pytest.param("java", "devfull", False, "disk/enospc", "python.enospc", id="java-ioexception-enospc"),
    pytest.param("java", "heap", False, "memory/memory_error", "java.out_of_memory", id="java-heap-xmx"),
    pytest.param("java", "stack", False, "crash/stack_overflow", "java.stack_overflow", id="java-stack-overflow"),
    pytest.param("java", "throw", False, "crash/uncaught_exception", "java.uncaught", id="java-uncaught"),
    pytest.param("toktx", "alloc", True, "memory/memory_error", "cxx.bad_alloc", id="cxx-bad-alloc-rlimit-as"),
    pytest.param("toktx", "what", False, "crash/cxx_exception", "cxx.what", id="cxx-terminate-what"),
    pytest.param("toktx", "null", False, "crash/segfault", None, id="cxx-null-dereference"),
    pytest.param("toktx", "devfull", False, "disk/enospc", "python.enospc", id="c-perror-enospc"),
    pytest.param("toktx_sanitized", "overflow", False, "crash/heap_corruption", "asan.memory_error", id="asan-heap-buffer-overflow"),
    pytest.param("toktx_sanitized", "null", False, "crash/segfault", "asan.segv", id="asan-segv"),
    pytest.param("toktx_sanitized", "ub", False, "crash/undefined_behavior", "ubsan.runtime_error", id="ubsan-signed-overflow"),
]
# fmt: on


@pytest.mark.asyncio
@pytest.mark.parametrize(("program", "mode", "limited", "verdict", "signature"), CASES)
async def test_runtime_failure_verdict(
    program: str,
    mode: str,
    limited: bool,
    verdict: str,
    signature: str | None,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """The runtime's real fatal text gives the verdict; a cause inside it beats the crash around it."""
    runner: Program = request.getfixturevalue(program)
    argv = (*runner.argv, mode)
    if mode == "refused":
        argv = (*argv, request.getfixturevalue("closed_port"))
    status = await _run(_limited(argv) if limited else list(argv), tmp_path)
    got = f"{status.category}/{status.subcategory}"
    assert got == verdict, (status.summary, status.rule, status.stderr_tail[-8:])
    assert status.summary.startswith(f"{verdict}: ")
    if signature is not None:
        assert signature in [d.id for d in status.diagnostics], status.diagnostics
    if mode in ("none", "throw", "what"):  # the program's own message, not the runtime's frame
        assert "shard manifest missing" in status.summary, status.summary


@pytest.mark.asyncio
@pytest.mark.parametrize("worker", ["run_command", "run_command_captured"])
@pytest.mark.parametrize(
    ("mode", "verdict", "signal"),
    [
        pytest.param("null", "crash/segfault", "SIGSEGV", id="segfault"),
        pytest.param("devfull", "disk/enospc", None, id="enospc-on-its-stderr"),
    ],
)
async def test_native_tool_as_child_of_a_python_worker(
    mode: str, verdict: str, signal: str | None, worker: str, toktx: Program, tmp_path: Path
) -> None:
    """A shard runs ``toktx`` with subprocess.run(check=True): the verdict names toktx and why.

    With ``capture_output=True`` the child's error text exists only in the exception's
    ``stderr`` attribute, which the runner keeps and the classifier reads.
    """
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=2.0)) as supervisor:
        runner = await supervisor.spawn(
            f"{CHILD_WORKERS}:{worker}", *toktx.argv, mode, cwd=tmp_path
        )
        status = await runner.wait()
    assert isinstance(status, RunnerFailed), status
    assert f"{status.category}/{status.subcategory}" == verdict, status.summary
    assert status.in_child is not None
    assert (status.in_child.name, status.in_child.signal) == ("toktx", signal)
    assert status.in_child.cmdline == [*toktx.argv, mode]
    assert status.summary.startswith(f"{verdict} in child toktx: ")
    assert status.termination_error is not None
    assert status.termination_error.type == "CalledProcessError"
    block = render_verdict(Report.from_status(status))
    assert f"  child:     toktx{' killed by signal SIGSEGV (11)' if signal else ''}" in block
